/* Compiled as api/ is (make check-layers): must compile, the control of
 * the api_ probes: the engine's public header and api's own. */
#include "nn.h"
#include "handlers.h"
#include "predict_stream.h"
