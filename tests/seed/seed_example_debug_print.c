#include <stdio.h>
#include "talloc.h"

int main(int argc, char **argv) {
  // some allocations to make things happen
  char *lol = (char *) TAlloc_malloc(10 * sizeof(char));
  char *lmao = (char *) TAlloc_malloc(50 * sizeof(char));
  char *wow = (char *) TAlloc_malloc(2000 * sizeof(char));
  int *cool = (int *) TAlloc_malloc(5000000 * sizeof(int));
  
  // and here's the starring function
  TAlloc_debug_print();

  return 0;
}
