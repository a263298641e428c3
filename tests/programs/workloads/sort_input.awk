# sort_input.awk - writes at least `bytes` bytes (default 5 MiB) of text for sort(1):
# lines of a made-up word, a number and another word, from a Park-Miller generator, so the
# file is the same on every run. Usage: awk -v bytes=N -f sort_input.awk > file
function next_value() {
    state = (state * 16807) % 2147483647
    return state
}
function word(v,    w) {
    w = syllable[v % 64] syllable[int(v / 64) % 64]
    if (v % 3)
        w = w syllable[int(v / 4096) % 64]
    return w
}
BEGIN {
    if (bytes == "")
        bytes = 5242880
    split("ka ri to me na su lo pe vi da go ze bu hi jo wa", a, " ")
    split("n r s l t k m x", b, " ")
    n = 0
    for (i = 1; i <= 16; i++)
        for (j = 1; j <= 4; j++)
            syllable[n++] = a[i] b[j]
    state = 20240601
    written = 0
    while (written < bytes) {
        v = next_value()
        line = word(v) " " (v % 1000003) " " word(next_value()) "-" (v % 97)
        print line
        written += length(line) + 1
    }
}
