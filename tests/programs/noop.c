/*
 * noop.c - a shared library that replaces nothing: preloaded into a program, it leaves the C
 * library's malloc in charge. The real-program test uses it to show that run_programs.sh
 * fails when TAlloc did not serve the allocations.
 */
int talloc_programs_noop(void);

int talloc_programs_noop(void)
{
    return 0;
}
