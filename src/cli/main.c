#include <stdio.h>
int main(void) { printf("outrigger\n"); return 0; }
