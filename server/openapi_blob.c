/*
 * openapi_blob.c - api/openapi.json embedded in the binary at build time
 * (the assembler's .incbin, run from the repository root), NUL-terminated,
 * so GET /openapi.json never depends on where the daemon is started.
 */
__asm__(".section .rodata\n"
        ".global nnd_openapi_json\n"
        ".type nnd_openapi_json, @object\n"
        ".balign 16\n"
        "nnd_openapi_json:\n"
        ".incbin \"api/openapi.json\"\n"
        ".byte 0\n"
        ".size nnd_openapi_json, . - nnd_openapi_json\n"
        ".previous\n");
