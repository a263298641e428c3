/*
 * replay_main.c - a main() for fuzz targets built without libFuzzer (any compiler): runs
 * LLVMFuzzerTestOneInput once on every file named, or on every file in every directory
 * named (text twins, *.txt and *.md, are skipped). ctest uses it to replay the corpus.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int has_suffix(const char *name, const char *suffix)
{
    size_t n = strlen(name), k = strlen(suffix);
    return n >= k && strcmp(name + n - k, suffix) == 0;
}

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return 1;
    }
    uint8_t *data = NULL;
    size_t size = 0, capacity = 0, got;
    do {
        if (size == capacity) {
            capacity = capacity ? 2 * capacity : 4096;
            data = realloc(data, capacity);
        }
        got = fread(data + size, 1, capacity - size, f);
        size += got;
    } while (got > 0);
    fclose(f);
    LLVMFuzzerTestOneInput(data, size);
    free(data);
    return 0;
}

static int run_path(const char *path, size_t *count)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
        (*count)++;
        return run_file(path);
    }
    DIR *dir = opendir(path);
    struct dirent *entry;
    int status = 0;
    while (dir && (entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] == '.' || has_suffix(entry->d_name, ".txt") || has_suffix(entry->d_name, ".md"))
            continue;
        char child[4096];
        snprintf(child, sizeof child, "%s/%s", path, entry->d_name);
        status |= run_path(child, count);
    }
    if (dir)
        closedir(dir);
    return status;
}

int main(int argc, char **argv)
{
    size_t count = 0;
    int status = 0;
    for (int i = 1; i < argc; i++)
        status |= run_path(argv[i], &count);
    printf("%s: %zu inputs replayed, none broke an invariant\n", argv[0], count);
    return status;
}
