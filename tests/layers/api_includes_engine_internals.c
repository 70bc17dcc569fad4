/* Compiled as api/ is (make check-layers): must fail, api/ sees only the
 * engine's public nn.h. */
#include "internal.h"
