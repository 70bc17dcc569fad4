/*
 * onnx.h - models as ONNX files, both ways (API.md, "Export and import").
 *
 * Export writes a model's inference graph: input "input" float32 [N, inputs]
 * of raw features; the standardization as Sub and Div; each spec layer as its
 * operators (dense Gemm with transB = 1, each activation its operator, gelu as
 * its Erf formula, batch norm BatchNormalization, inverted dropout and the
 * identity activation an Identity node, scale_at_test dropout a Mul, residual
 * an Add after an optional projection Gemm); output "probabilities" (Softmax
 * on axis 1) for classification or "outputs" for regression. Node and
 * initializer names come from the layer's position ("layers.2/Gemm",
 * "layers.2.weight"), so one model version always gives the same bytes.
 *
 * Import reads the feed-forward graphs torch.onnx.export writes for
 * nn.Sequential MLPs and everything export writes (see onnx_import.c for the
 * rules), into a new model whose tensors hold the graph's weights.
 */
#ifndef API_ONNX_H
#define API_ONNX_H

#include <stddef.h>
#include <stdint.h>

#include "nn.h"
#include "api_err.h"
#include "spec_json.h"

#define API_ONNX_OPSET_MIN 13
#define API_ONNX_OPSET_MAX 17
#define API_ONNX_OPSET_DEFAULT 13

/*
 * m's graph at opset (API_ONNX_OPSET_MIN..MAX) into *buf (malloc'd, *len
 * bytes; free with free()). columns_json, when not NULL, is stored in the
 * model's metadata_props under "nnd.columns" (the tabular encoding). 0, or
 * -1 with e set (422 naming "opset" when out of range, 500 out of memory).
 */
int api_onnx_export(const nn_model *m, int opset, const char *columns_json, uint8_t **buf,
                    size_t *len, api_err *e);

/* The import's task: from the graph (a final Softmax is classification,
 * else regression), or as the caller says. */
typedef enum { API_ONNX_TASK_AUTO = -1 } api_onnx_task;

/*
 * A new model from the ONNX file buf[0..len). task is NN_TASK_CLASSIFICATION,
 * NN_TASK_REGRESSION or API_ONNX_TASK_AUTO. lim bounds the model as for
 * POST /v1/models. On success *out owns the model (its weights, batch-norm
 * statistics and standardization from the graph). Errors: 400
 * "malformed_onnx" (not a protobuf ModelProto, or inconsistent), 422
 * "unsupported_onnx" naming the node and its operator (or the tensor), 422
 * "validation_failed" for limits. Nothing is allocated on failure.
 */
int api_onnx_import(const void *buf, size_t len, int task, const api_limits *lim,
                    nn_model **out, api_err *e);

#endif
