/* Request arenas: a bump allocator over a list of blocks, freed all at once. */
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

#define BLOCK_SIZE 8192 /* most requests fit in one or two blocks */

struct block {
    struct block *next;
    size_t used, size;
    alignas(max_align_t) unsigned char data[];
};

struct sb_arena {
    struct block *head; /* the block being filled; older ones follow */
    size_t total;       /* bytes handed out */
    size_t max;
};

struct sb_arena *sb_arena_new(size_t max)
{
    struct sb_arena *a = calloc(1, sizeof(*a));
    if (a != NULL)
        a->max = max;
    return a;
}

void sb_arena_free(struct sb_arena *a)
{
    if (a == NULL)
        return;
    struct block *b = a->head;
    while (b != NULL) {
        struct block *next = b->next;
        free(b);
        b = next;
    }
    free(a);
}

void *sb_arena_alloc(struct sb_arena *a, size_t size)
{
    const size_t align = alignof(max_align_t);
    if (size > a->max || a->total > a->max - size)
        return NULL;
    size_t rounded = (size + align - 1) & ~(align - 1);
    if (rounded < size)
        return NULL;
    struct block *b = a->head;
    if (b == NULL || b->size - b->used < rounded) {
        /* Large allocations get a block of their own, placed behind the current one so that
         * the current block's free space is not wasted. */
        size_t want = rounded > BLOCK_SIZE / 4 ? rounded : BLOCK_SIZE;
        struct block *nb = malloc(sizeof(*nb) + want);
        if (nb == NULL)
            return NULL;
        nb->used = 0;
        nb->size = want;
        if (b != NULL && want != BLOCK_SIZE) {
            nb->next = b->next;
            b->next = nb;
        } else {
            nb->next = b;
            a->head = nb;
        }
        b = nb;
    }
    void *p = b->data + b->used;
    b->used += rounded;
    a->total += size;
    memset(p, 0, size);
    return p;
}

char *sb_arena_strndup(struct sb_arena *a, const char *s, size_t len)
{
    if (len == SIZE_MAX)
        return NULL;
    char *p = sb_arena_alloc(a, len + 1);
    if (p == NULL)
        return NULL;
    if (len > 0)
        memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

struct sb_str sb_arena_str(struct sb_arena *a, struct sb_str s, int *err)
{
    char *p = sb_arena_strndup(a, s.p, s.len);
    if (p == NULL) {
        if (err != NULL)
            *err = SB_ENOMEM;
        return SB_STR_NULL;
    }
    return (struct sb_str){p, s.len};
}

size_t sb_arena_used(const struct sb_arena *a)
{
    return a->total;
}
