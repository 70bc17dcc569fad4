/*
 * handlers_int.h - helpers shared by the handler files (api/handlers_*.c)
 * and nothing else.
 */
#ifndef API_HANDLERS_INT_H
#define API_HANDLERS_INT_H

#include "handlers.h"

/* ?limit= and ?offset= of a list request (422 when out of range). */
int api_paging(const api_req *rq, int64_t *limit, int64_t *offset, api_err *e);
/* {"<key>": items, "total", "limit", "offset"} as a 200 reply (takes items). */
int api_reply_list(api_reply *rp, const char *key, cJSON *items, int64_t total,
                   int64_t limit, int64_t offset);
/* Adds an RFC 3339 time, or null for ms <= 0. */
void api_add_time(cJSON *o, const char *key, int64_t ms);
/* The body as a JSON object: 400 when malformed, 422 when not an object. */
cJSON *api_parse_body(const api_req *rq, api_err *e);

/* The q (0..1) that an Accept header value gives the media type `type`
 * (exact match, case-insensitive; 0 when absent or accept is NULL). */
double api_accept_q(const char *accept, const char *type);

/* The rows of the classification set `other` must use only class names of
 * a model with `outputs` outputs trained on d (api_classes_for_model): a
 * 422 on field naming the unknown ones. Nothing when d's classes do not fit
 * the outputs (the training set's own check says so). */
void api_check_class_names(const api_backend *b, const api_dataset_info *d, int outputs,
                           const api_dataset_info *other, const char *field, api_err *e);

#endif
