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

#endif
