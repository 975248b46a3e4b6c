/* The backend kinds this build knows: the config's backend: value mapped to its operations. */
#include "backend/anthropic.h"
#include "backend/backend.h"
#include "backend/bedrock.h"
#include "backend/ollama_remote.h"
#include "backend/openai.h"

#include <string.h>

static const struct sb_backend_ops *const kinds[] = {
    &sb_local_backend_ops,     /* "local": in-process llama.cpp (backend/local.c) */
    &sb_anthropic_backend_ops, /* "anthropic": the Messages API (backend/anthropic.c) */
    &sb_bedrock_backend_ops,   /* "bedrock": Converse with SigV4 (backend/bedrock.c) */
    &sb_openai_backend_ops,    /* "openai": OpenAI-compatible servers (backend/openai.c) */
    &sb_ollama_backend_ops,    /* "ollama": Ollama's native API (backend/ollama_remote.c) */
};

const struct sb_backend_ops *sb_backend_find_ops(const char *kind)
{
    for (size_t i = 0; kind && i < SB_ARRAY_LEN(kinds); i++) {
        if (strcmp(kinds[i]->kind, kind) == 0) {
            return kinds[i];
        }
    }
    return NULL;
}
