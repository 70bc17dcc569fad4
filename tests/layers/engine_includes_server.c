/* Compiled as engine/ is (make check-layers): must fail, engine/ never
 * sees a header of server/. */
#include "http.h"
