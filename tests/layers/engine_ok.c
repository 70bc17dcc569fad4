/* Compiled as engine/ is (make check-layers): must compile, the control of
 * the engine_ probes. */
#include "nn.h"
#include "internal.h"
