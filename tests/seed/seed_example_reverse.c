#include <stdio.h>
#include "talloc.h"

typedef struct __int_array_t {
    size_t length;
    int *array;
} int_array_t;

int main(int argc, char **argv) {
    int_array_t *arr = (int_array_t *) TAlloc_malloc(sizeof(int_array_t));
    arr->array = (int *) TAlloc_malloc(sizeof(int) * 10);
    arr->length = 10;
    for (int i = 0; i < arr->length; ++i) {
        arr->array[i] = i;
    }
    for (int i = arr->length - 1; i >= 0; --i) {
        printf("%d ", arr->array[i]);
    }
    printf("\n");
    
    TAlloc_free(arr->array);
    TAlloc_free(arr);
}
