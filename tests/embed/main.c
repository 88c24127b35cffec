/* A plain C program linked with libcfq.a: no Python anywhere. */
#include <stdio.h>
#include <string.h>

#include "cfq.h"

int main(int argc, char **argv)
{
    float g[1000], x[1000], dx[1000], dmin, dmax;
    int i, rc;
    (void)argc;
    (void)argv;
    for (i = 0; i < 1000; i++) {
        g[i] = (float)((i * 37) % 101) / 25.0f - 2.0f;
        x[i] = (float)((i * 53) % 97) / 12.0f - 4.0f;
    }
    rc = cfq_fq_vars_grad(g, x, 1000, -3.0f, 3.0f, 8, 0, dx, &dmin, &dmax, NULL);
    if (rc != CFQ_OK) {
        printf("error %s\n", cfq_strerror(rc));
        return 1;
    }
    printf("isa=%s dmin=%a dmax=%a", cfq_isa_name(cfq_active_isa()), (double)dmin, (double)dmax);
    for (i = 0; i < 1000; i += 111)
        printf(" %a", (double)dx[i]);
    printf("\n");
    return 0;
}
