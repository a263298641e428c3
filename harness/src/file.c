/*
 * file.c - reading program files: the whole file as bytes, or as a program (text when the
 * name ends in .txt, bytes otherwise). Shared by talloc-replay, the tests and the stress
 * driver so that every tool reads reproducers the same way.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

char *th_read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *data = NULL;
    size_t used = 0, capacity = 0, got;
    do {
        if (used + 1 >= capacity) {
            capacity = capacity ? 2 * capacity : 4096;
            char *grown = realloc(data, capacity);
            if (grown == NULL) {
                free(data);
                fclose(f);
                return NULL;
            }
            data = grown;
        }
        got = fread(data + used, 1, capacity - used - 1, f);
        used += got;
    } while (got > 0);
    fclose(f);
    data[used] = 0;
    *size = used;
    return data;
}

bool th_is_text_path(const char *path)
{
    size_t n = strlen(path);
    return n > 4 && strcmp(path + n - 4, ".txt") == 0;
}

bool th_load_program(const char *path, th_program *out, char *error, size_t error_capacity)
{
    size_t size;
    char *data = th_read_file(path, &size);
    th_program_init(out);
    if (data == NULL) {
        snprintf(error, error_capacity, "%s: %s", path, strerror(errno));
        return false;
    }
    bool ok = true;
    if (th_is_text_path(path)) {
        char message[160];
        if (th_parse_text(data, out, message, sizeof message) != 0) {
            snprintf(error, error_capacity, "%s: %s", path, message);
            ok = false;
        }
    } else {
        th_decode((const uint8_t *)data, size, out);
    }
    free(data);
    return ok;
}
