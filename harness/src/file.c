/*
 * file.c - reading program files: the whole file as bytes, or as a program (text when the
 * name ends in .txt, bytes otherwise). Shared by talloc-replay, the fuzz targets' replay
 * build, the tests and the stress driver so that every tool reads reproducers the same way:
 * a directory, an input above TH_MAX_INPUT_BYTES (a device that never ends, such as
 * /dev/zero, included) and a text file with a NUL byte in it are refused with a message.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"

char *th_read_input(const char *path, size_t *size, char *error, size_t error_capacity)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(error, error_capacity, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        snprintf(error, error_capacity, "%s: is a directory, not a program file", path);
        errno = EISDIR;
        return NULL;
    }
    char *data = NULL;
    size_t used = 0, capacity = 0, got;
    do { /* reads at most TH_MAX_INPUT_BYTES + 1 bytes */
        if (used == capacity) {
            if (capacity > TH_MAX_INPUT_BYTES)
                break;
            capacity = capacity ? 2 * capacity : 4096;
            if (capacity > TH_MAX_INPUT_BYTES)
                capacity = (size_t)TH_MAX_INPUT_BYTES + 1;
            char *grown = realloc(data, capacity + 1);
            if (grown == NULL) {
                free(data);
                fclose(f);
                snprintf(error, error_capacity, "%s: out of memory reading it", path);
                errno = ENOMEM;
                return NULL;
            }
            data = grown;
        }
        got = fread(data + used, 1, capacity - used, f);
        used += got;
    } while (got > 0);
    bool is_error = ferror(f) != 0;
    int saved = errno;
    fclose(f);
    if (is_error || used > TH_MAX_INPUT_BYTES) {
        free(data);
        if (is_error)
            snprintf(error, error_capacity, "%s: %s", path, strerror(saved));
        else
            snprintf(error, error_capacity, "%s: larger than %u bytes, not a program file", path,
                     (unsigned)TH_MAX_INPUT_BYTES);
        errno = is_error ? saved : EFBIG;
        return NULL;
    }
    data[used] = 0;
    *size = used;
    return data;
}

char *th_read_file(const char *path, size_t *size)
{
    char error[16];
    return th_read_input(path, size, error, sizeof error);
}

bool th_is_text_path(const char *path)
{
    size_t n = strlen(path);
    return n > 4 && strcmp(path + n - 4, ".txt") == 0;
}

bool th_load_program(const char *path, th_program *out, char *error, size_t error_capacity)
{
    size_t size;
    th_program_init(out);
    char *data = th_read_input(path, &size, error, error_capacity);
    if (data == NULL)
        return false;
    bool ok = true;
    if (th_is_text_path(path)) {
        char message[160];
        const char *nul = memchr(data, 0, size);
        int line = 1;
        for (const char *c = data; nul && c < nul; c++)
            line += *c == '\n';
        if (nul != NULL) {
            snprintf(error, error_capacity,
                     "%s: line %d: a NUL byte (offset %zu): a .txt file is read as text; is it "
                     "a byte program under a text name?",
                     path, line, (size_t)(nul - data));
            ok = false;
        } else if (th_parse_text(data, out, message, sizeof message) != 0) {
            snprintf(error, error_capacity, "%s: %s", path, message);
            ok = false;
        }
    } else {
        th_decode((const uint8_t *)data, size, out);
    }
    free(data);
    return ok;
}

static bool has_suffix(const char *name, const char *suffix)
{
    size_t n = strlen(name), k = strlen(suffix);
    return n >= k && strcmp(name + n - k, suffix) == 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char **th_list_programs(const char *path, size_t *count, char *error, size_t error_capacity)
{
    DIR *dir = opendir(path);
    if (dir == NULL) {
        snprintf(error, error_capacity, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char **names = malloc(sizeof *names);
    size_t n = 0, capacity = 1;
    struct dirent *entry;
    while (names != NULL && (entry = readdir(dir)) != NULL) {
        const char *name = entry->d_name;
        if (name[0] == '.' || has_suffix(name, ".txt") || has_suffix(name, ".md"))
            continue;
        if (n == capacity) {
            char **grown = realloc(names, 2 * capacity * sizeof *names);
            if (grown == NULL) {
                for (size_t i = 0; i < n; i++)
                    free(names[i]);
                free(names);
                names = NULL;
                break;
            }
            names = grown;
            capacity *= 2;
        }
        size_t length = strlen(path) + strlen(name) + 2;
        if ((names[n] = malloc(length)) != NULL)
            snprintf(names[n++], length, "%s/%s", path, name);
    }
    closedir(dir);
    if (names == NULL) {
        snprintf(error, error_capacity, "%s: out of memory listing it", path);
        return NULL;
    }
    qsort(names, n, sizeof *names, by_name);
    *count = n;
    return names;
}
