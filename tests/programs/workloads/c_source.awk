# c_source.awk - writes a C translation unit of `functions` functions (default 400) for the
# compiler runs: structs, switches, loops over tables and string literals, enough for gcc -O2
# to build and optimise large intermediate representations. The same text on every run.
# Usage: awk -v functions=N -f c_source.awk > file.c
BEGIN {
    if (functions == "")
        functions = 400
    print "#include <stddef.h>"
    print "#include <string.h>"
    print ""
    print "struct record { int id; long weight; const char *name; unsigned char tag[24]; };"
    print ""
    print "static const char *const names[] = {"
    for (i = 0; i < 256; i++)
        printf "    \"name-%d-%x\",\n", i, i * 2654435761 % 4294967296
    print "};"
    print ""
    print "static inline long mix(long a, long b) { return (a * 31 + b) ^ (a >> 7); }"
    print ""
    for (f = 0; f < functions; f++) {
        printf "long work_%d(struct record *r, size_t n, const long *table)\n{\n", f
        print "    long acc = 0;"
        print "    for (size_t i = 0; i < n; i++) {"
        printf "        switch ((r[i].id + %d) %% %d) {\n", f, 5 + f % 11
        for (c = 0; c < 5 + f % 11; c++)
            printf "        case %d: acc = mix(acc, table[(i + %d) %% 64] * %d); r[i].tag[%d] ^= (unsigned char)acc; break;\n", c, c * 3 + f, c + f % 13 + 1, c % 24
        print "        default: acc += r[i].weight; break;"
        print "        }"
        printf "        if (strcmp(r[i].name, names[%d]) == 0)\n", f % 256
        printf "            acc -= (long)strlen(names[(i + %d) %% 256]);\n", f
        print "    }"
        printf "    for (int k = 0; k < %d; k++)\n", 8 + f % 17
        printf "        acc = mix(acc, k * %d);\n", f + 1
        print "    return acc;"
        print "}"
        print ""
    }
    print "long work_all(struct record *r, size_t n, const long *table)"
    print "{"
    print "    long sum = 0;"
    for (f = 0; f < functions; f++)
        printf "    sum += work_%d(r, n, table);\n", f
    print "    return sum;"
    print "}"
}
