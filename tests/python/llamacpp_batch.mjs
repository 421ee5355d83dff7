// Batched greedy runs through llama.cpp (node-llama-cpp from the peer install), one node start for
// many models x prompts. Same semantics as ref.mjs `greedy` (fresh context per prompt, temperature
// 0, top-k [token, log p] per step from the probabilities node-llama-cpp reports).
//
//   node llamacpp_batch.mjs PEER_DIR JOBS.json      (PEER_DIR = the folder holding ref.mjs)
//   JOBS.json: [{"model": PATH, "prompts": [[1,2,3], ...], "n": 24, "top": 5, "ctx": 256,
//                "threads": 2, "kv_type": "F32" (default: llama.cpp's F16),
//                "flash_attention": true|false|"auto" (default: the library's, as in ref.mjs)}]
// Prints one JSON object: {build_type, llama_cpp_release, results: [{model, runs: [{prompt_tokens,
// tokens, top} | {error}]} | {model, error}]}.
import fs from "node:fs";
import path from "node:path";
import {pathToFileURL} from "node:url";

const [peerDir, jobFile] = process.argv.slice(2);
if (!peerDir || !jobFile) {
    console.error("usage: node llamacpp_batch.mjs PEER_DIR JOBS.json");
    process.exit(2);
}
const entry = path.join(peerDir, "node_modules", "node-llama-cpp", "dist", "index.js");
const {getLlama} = await import(pathToFileURL(entry).href);
const jobs = JSON.parse(fs.readFileSync(jobFile, "utf8"));
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const out = {build_type: llama.buildType, llama_cpp_release: llama.llamaCppRelease, results: []};

for (const job of jobs) {
    const res = {model: job.model, runs: []};
    let model;
    try {
        model = await llama.loadModel({modelPath: job.model});
    } catch (e) {
        res.error = String(e && e.message || e);
        out.results.push(res);
        continue;
    }
    const n = job.n ?? 24, top = job.top ?? 5;
    for (const prompt of job.prompts) {
        const ctxOptions = {contextSize: job.ctx ?? 256, threads: job.threads ?? 2};
        // absent/null: node-llama-cpp's default (as ref.mjs; flash attention ends up on for CPU)
        if (job.flash_attention !== undefined && job.flash_attention !== null)
            ctxOptions.flashAttention = job.flash_attention;
        if (job.kv_type) {      // e.g. "F32"; llama.cpp's default KV cache type is F16
            ctxOptions.experimentalKvCacheKeyType = job.kv_type;
            ctxOptions.experimentalKvCacheValueType = job.kv_type;
        }
        const context = await model.createContext(ctxOptions);
        try {
            const seq = context.getSequence();
            const run = {prompt_tokens: prompt, tokens: [], top: []};
            for await (const step of seq.evaluateWithMetadata(prompt, {probabilities: true}, {temperature: 0})) {
                run.tokens.push(step.token);
                run.top.push([...step.probabilities.entries()].slice(0, top).map(([t, p]) => [t, Math.log(p)]));
                if (run.tokens.length >= n) break;
            }
            res.runs.push(run);
        } catch (e) {
            res.runs.push({prompt_tokens: prompt, error: String(e && e.message || e)});
        }
        await context.dispose();
    }
    await model.dispose();
    out.results.push(res);
}
await llama.dispose();
console.log(JSON.stringify(out));
