// Greedy decoding with llama.cpp's own library, printing each step's top
// logits, and (optionally) every intermediate f32 tensor of the first decode
// call — the ground truth `brandvoice debug-logits` is compared against when
// chasing greedy-parity gaps (issue 2). Built and run by `eval/bench/llama_dump.sh`.
//
//   llama_dump MODEL.gguf FA(-1 auto|0|1) STEPS id id id ...
//   DUMP_DIR=/tmp/d llama_dump ...   # writes NAME.bin (f32) + NAME.shape per tensor
#include "llama.h"
#include "ggml.h"
#include "ggml-backend.h"
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

static const char * g_dump_dir = nullptr;
static int g_decode_calls = 0;
static int g_dump_call = 1;

static bool cb(struct ggml_tensor * t, bool ask, void *) {
    if (!g_dump_dir || g_decode_calls != g_dump_call) return false;
    if (ask) return t->type == GGML_TYPE_F32;
    if (t->type != GGML_TYPE_F32) return true;
    std::vector<float> buf(ggml_nelements(t));
    if (!ggml_is_contiguous(t)) return true;
    ggml_backend_tensor_get(t, buf.data(), 0, ggml_nbytes(t));
    std::string base = std::string(g_dump_dir) + "/" + std::to_string(g_decode_calls) + "_" + t->name;
    FILE * f = fopen((base + ".bin").c_str(), "wb");
    if (f) { fwrite(buf.data(), 4, buf.size(), f); fclose(f); }
    f = fopen((base + ".shape").c_str(), "w");
    if (f) { fprintf(f, "%lld %lld %lld %lld\n", (long long) t->ne[0], (long long) t->ne[1], (long long) t->ne[2], (long long) t->ne[3]); fclose(f); }
    return true;
}

int main(int argc, char ** argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s MODEL FA STEPS ids...\n", argv[0]);
        return 2;
    }
    g_dump_dir = getenv("DUMP_DIR");
    if (getenv("DUMP_CALL")) g_dump_call = atoi(getenv("DUMP_CALL"));
    int fa = atoi(argv[2]);
    int steps = atoi(argv[3]);
    std::vector<llama_token> ids;
    for (int i = 4; i < argc; i++) ids.push_back(atoi(argv[i]));
    llama_backend_init();
    llama_log_set([](enum ggml_log_level, const char *, void *) {}, nullptr);
    auto mp = llama_model_default_params();
    llama_model * model = llama_model_load_from_file(argv[1], mp);
    if (!model) { fprintf(stderr, "load failed\n"); return 1; }
    auto cp = llama_context_default_params();
    cp.n_ctx = 1024;
    cp.n_batch = 512;
    cp.n_threads = 2;
    cp.n_threads_batch = 2;
    cp.flash_attn_type = fa < 0 ? LLAMA_FLASH_ATTN_TYPE_AUTO : (fa ? LLAMA_FLASH_ATTN_TYPE_ENABLED : LLAMA_FLASH_ATTN_TYPE_DISABLED);
    cp.cb_eval = cb;
    cp.cb_eval_user_data = nullptr;
    llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) { fprintf(stderr, "context failed\n"); return 1; }
    const int nv = llama_vocab_n_tokens(llama_model_get_vocab(model));
    std::vector<llama_token> cur = ids;
    std::vector<llama_token> hist = ids;
    std::string text;
    const llama_vocab * vocab = llama_model_get_vocab(model);
    for (int s = 0; s < steps; s++) {
        g_decode_calls++;
        llama_batch b = llama_batch_get_one(cur.data(), (int) cur.size());
        if (llama_decode(ctx, b) != 0) { fprintf(stderr, "decode failed\n"); return 1; }
        const float * lg0 = llama_get_logits_ith(ctx, -1);
        std::vector<float> lgv(lg0, lg0 + nv);
        if (getenv("REP_PEN")) {
            // llama.cpp's old default sampling: repetition penalty over the
            // last REP_N tokens (prompt included), before greedy.
            const float pen = atof(getenv("REP_PEN"));
            const size_t last_n = getenv("REP_N") ? atoi(getenv("REP_N")) : 64;
            std::vector<char> seen(nv, 0);
            for (size_t i = hist.size() > last_n ? hist.size() - last_n : 0; i < hist.size(); i++) seen[hist[i]] = 1;
            for (int t = 0; t < nv; t++) if (seen[t]) lgv[t] = lgv[t] > 0 ? lgv[t] / pen : lgv[t] * pen;
        }
        const float * lg = lgv.data();
        std::vector<int> idx(nv);
        for (int i = 0; i < nv; i++) idx[i] = i;
        std::partial_sort(idx.begin(), idx.begin() + 5, idx.end(), [&](int a, int c) { return lg[a] > lg[c]; });
        printf("step %d:", s);
        for (int j = 0; j < 5; j++) printf(" %d:%.4f", idx[j], lg[idx[j]]);
        printf("\n");
        fflush(stdout);
        if (llama_vocab_is_eog(vocab, idx[0])) { text += " [end of text]"; break; }
        char piece[256];
        int n = llama_token_to_piece(vocab, idx[0], piece, sizeof(piece), 0, true);
        if (n > 0) text.append(piece, n);
        cur.assign(1, idx[0]);
        hist.push_back(idx[0]);
    }
    printf("text: ");
    for (char c : text) { if (c == '\n') printf("\\n"); else putchar(c); }
    printf("\n");
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
