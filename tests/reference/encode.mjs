// Reference encodings from the real Hugging Face tokenizers (Rust, through the @anush008/tokenizers
// napi binding) for upcycle's tokenizer parity tests.
//   node encode.mjs TOKENIZER_JSON < texts.json   → one JSON object on stdout:
//     {"ids": [[...]], "ids_special": [[...]], "decoded": [...], "decoded_skip": [...]}
//     ids: encode(text, add_special_tokens=false); ids_special: add_special_tokens=true;
//     decoded / decoded_skip: decode(ids_special, skip_special_tokens=false / true).
//   node encode.mjs --bench TOKENIZER_JSON TEXT_FILE → "hf_mb_per_s <number>" (single encode of the file
//     after one warm-up run; the binding runs one encode on the libuv pool, i.e. one thread).
// Texts are JSON strings, so they are always valid Unicode; the binding cannot receive raw bytes.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';

const require = createRequire(import.meta.url);
const { Tokenizer } = require('@anush008/tokenizers');

async function main() {
  const args = process.argv.slice(2);
  if (args[0] === '--bench') {
    const tok = Tokenizer.fromFile(args[1]);
    const text = readFileSync(args[2], 'utf8');
    await tok.encode(text, null, { addSpecialTokens: false });
    const start = process.hrtime.bigint();
    const enc = await tok.encode(text, null, { addSpecialTokens: false });
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    console.log(`hf_mb_per_s ${(Buffer.byteLength(text, 'utf8') / 1e6 / seconds).toFixed(3)} tokens ${enc.getIds().length}`);
    return;
  }
  const tok = Tokenizer.fromFile(args[0]);
  const texts = JSON.parse(readFileSync(0, 'utf8'));
  const out = { ids: [], ids_special: [], decoded: [], decoded_skip: [] };
  for (const text of texts) {
    out.ids.push((await tok.encode(text, null, { addSpecialTokens: false })).getIds());
    const special = (await tok.encode(text, null, { addSpecialTokens: true })).getIds();
    out.ids_special.push(special);
    out.decoded.push(await tok.decode(special, false));
    out.decoded_skip.push(await tok.decode(special, true));
  }
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  console.error(`encode.mjs: ${e && e.message ? e.message : e}`);
  process.exit(1);
});
