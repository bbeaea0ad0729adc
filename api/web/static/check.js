// The recipient page's checks, in this browser, with nothing uploaded (WebCrypto only):
//
// - a downloaded recording: its SHA-256 against the fingerprints the page lists;
// - a disclosure package (a ZIP): the checks of the package's own verify_export.py, 1-5 and
//   the hash part of 6, against the verifier key and log origin this page gives (the vault's,
//   not the package's): 1. only plain, safely named, unique, stored entries, with the manifest,
//   SHA256SUMS and certificate present; 2. every file the manifest lists is there with its size
//   and SHA-256, and nothing else; 3. SHA256SUMS agrees; 4. the certificate is a C2SP signed
//   note by the vault's Ed25519 key and names this manifest; 5. every custody event in it is in
//   the signed log (an RFC 6962/9162 inclusion proof against an Ed25519-signed checkpoint for
//   this log); 6. the log recorded each master's and derived copy's SHA-256, and logged this
//   export. (The full chain from each derived copy back to its masters is verify_export.py's.)
//
// A module file: the Content-Security-Policy forbids inline script. Without it the page still
// plays and downloads.
const input = document.getElementById("check-file");
const result = document.getElementById("check-result");

const te = new TextEncoder();
const utf8 = new TextDecoder("utf-8", { fatal: true });
const SIGNATURE_PREFIX = "\u2014 "; // em dash and a space (C2SP signed-note)
const CERTIFICATE_HEADER = "evidence-vault custody certificate v1";
const CERTIFICATE_FORMATS = ["evidence-vault/custody-certificate/v1", "evidence-vault/custody-certificate/v2"];
const RECORDS = ["manifest.json", "SHA256SUMS", "custody-certificate.json"];
const NOTES = ["VERIFY.txt", "verify_export.py"];

class Failed extends Error {}

const concat = (...parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
};
const sha256 = async (bytes) => new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
const hex = (bytes) => [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
const fromHex = (text) => {
  if (typeof text !== "string" || !/^[0-9a-f]{64}$/.test(text)) throw new Failed("a leaf or proof hash is not 32 bytes of hex");
  return Uint8Array.from(text.match(/../g), (x) => parseInt(x, 16));
};
const b64 = (text) => {
  // Standard alphabet, padded, nothing else.
  if (text.length % 4 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) throw new Failed("malformed base64");
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
};
const canonical = (v) => Array.isArray(v) ? `[${v.map(canonical).join(",")}]`
  : v && typeof v === "object"
    ? `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(",")}}`
    : JSON.stringify(v);

// --- check 1: the ZIP container (stored entries, as the vault writes them) --------------------
function unzip(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let end = -1;
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 22 - 65535); i -= 1) {
    if (view.getUint32(i, true) === 0x06054b50) { end = i; break; }
  }
  if (end < 0) throw new Failed("this is not a ZIP package");
  const count = view.getUint16(end + 10, true);
  let at = view.getUint32(end + 16, true);
  const files = new Map();
  for (let k = 0; k < count; k += 1) {
    if (view.getUint32(at, true) !== 0x02014b50) throw new Failed("the package's ZIP directory is damaged");
    const method = view.getUint16(at + 10, true);
    const size = view.getUint32(at + 20, true);
    const plain = view.getUint32(at + 24, true);
    const nameLength = view.getUint16(at + 28, true);
    const local = view.getUint32(at + 42, true);
    const name = utf8.decode(bytes.subarray(at + 46, at + 46 + nameLength));
    at += 46 + nameLength + view.getUint16(at + 30, true) + view.getUint16(at + 32, true);
    if (!name || name.startsWith("/") || name.includes("\\") || name.endsWith("/")
        || name.split("/").includes("..")) {
      throw new Failed(`the package holds an unsafe name: ${name}`);
    }
    if (files.has(name)) throw new Failed(`${name} appears twice in the package`);
    if (size === 0xffffffff || local === 0xffffffff) throw new Failed("packages over 4 GB: check them with verify_export.py");
    if (method !== 0 || size !== plain) throw new Failed(`${name} is compressed; the vault stores files uncompressed`);
    if (view.getUint32(local, true) !== 0x04034b50) throw new Failed(`${name}: the package's ZIP entries are damaged`);
    const start = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
    if (start + size > bytes.length) throw new Failed(`${name} is cut short`);
    files.set(name, bytes.subarray(start, start + size));
  }
  for (const name of RECORDS) if (!files.has(name)) throw new Failed(`the package has no ${name}`);
  return files;
}

// --- check 4 and 5: C2SP signed notes, checkpoints and RFC 9162 inclusion proofs -------------
async function verifierKey(vkey) {
  const first = vkey.indexOf("+");
  const second = vkey.indexOf("+", first + 1);
  if (first < 1 || second < 0) throw new Failed("the vault's verifier key is malformed");
  const name = vkey.slice(0, first);
  const raw = b64(vkey.slice(second + 1));
  if (raw.length !== 33 || raw[0] !== 0x01) throw new Failed("the vault's key is not an Ed25519 signed-note key");
  const id = (await sha256(concat(te.encode(name), Uint8Array.of(0x0a, 0x01), raw.subarray(1)))).subarray(0, 4);
  if (hex(id) !== vkey.slice(first + 1, second)) throw new Failed("the vault's key id does not match the key");
  const key = await crypto.subtle.importKey("raw", raw.subarray(1), { name: "Ed25519" }, false, ["verify"]);
  return { name, id, key };
}

async function openNote(note, signer) {
  if (typeof note !== "string" || /[\u0000-\u0009\u000b-\u001f]/.test(note)) throw new Failed("a signed note has control characters");
  const split = note.lastIndexOf("\n\n");
  if (split < 0 || !note.endsWith("\n") || split + 2 === note.length) throw new Failed("a signed note has no signature");
  const text = note.slice(0, split + 1);
  let signed = false;
  for (const line of note.slice(split + 2, -1).split("\n")) {
    if (!line.startsWith(SIGNATURE_PREFIX)) throw new Failed("a signed note has a malformed signature line");
    const rest = line.slice(SIGNATURE_PREFIX.length);
    const space = rest.indexOf(" ");
    const blob = b64(rest.slice(space + 1));
    if (space < 1 || blob.length < 5) throw new Failed("a signed note has a malformed signature line");
    if (rest.slice(0, space) === signer.name && equal(blob.subarray(0, 4), signer.id)) {
      const ok = await crypto.subtle.verify({ name: "Ed25519" }, signer.key, blob.subarray(4), te.encode(text));
      if (!ok) throw new Failed(`the signature by ${signer.name} does not verify`);
      signed = true;
    }
  }
  if (!signed) throw new Failed(`not signed by this vault's key (${signer.name}); if the vault has rotated its key since, check with verify_export.py --key`);
  return text;
}

async function signedTree(note, signer, origin, cache) {
  if (!cache.has(note)) {
    const lines = (await openNote(note, signer)).split("\n");
    if (lines.length < 4 || !/^(0|[1-9][0-9]*)$/.test(lines[1])) throw new Failed("a checkpoint is malformed");
    const root = b64(lines[2]);
    if (root.length !== 32) throw new Failed("a checkpoint is malformed");
    if (lines[0] !== origin) throw new Failed(`a checkpoint is for log ${lines[0]}, not this vault's (${origin})`);
    cache.set(note, { size: Number(lines[1]), root });
  }
  return cache.get(note);
}

const node = (left, right) => sha256(concat(Uint8Array.of(0x01), left, right));

async function verifyInclusion(leaf, index, size, path, root) {
  // RFC 9162 section 2.1.3.2; division, not bit operators, so sizes past 2^31 work.
  if (!Number.isSafeInteger(index) || index < 0 || index >= size) throw new Failed("an inclusion proof's index is outside the tree");
  let fn = index; let sn = size - 1; let r = leaf;
  for (const p of path) {
    if (sn === 0) throw new Failed("an inclusion proof is too long");
    if (fn % 2 === 1 || fn === sn) {
      r = await node(p, r);
      if (fn % 2 === 0) {
        while (fn !== 0 && fn % 2 === 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      }
    } else {
      r = await node(r, p);
    }
    fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
  }
  if (sn !== 0 || !equal(r, root)) throw new Failed(`custody event ${index} is not in the signed log`);
}

async function certificateEvent(item, signer, origin, cache) {
  const { size, root } = await signedTree(item.checkpoint, signer, origin, cache);
  const index = item.leaf_index;
  const path = item.proof.map(fromHex);
  const form = item.disclosure || "full";
  if (form === "full") {
    const entry = te.encode(item.entry);
    const data = JSON.parse(item.entry);
    if (data.seq !== index) throw new Failed("an event's position differs from its proof's");
    await verifyInclusion(await sha256(concat(Uint8Array.of(0x00), entry)), index, size, path, root);
    return { ...data.event, seq: index, form };
  }
  if (form !== "redacted" && form !== "withheld") throw new Failed(`custody event ${index} has an unknown form`);
  if (!item.event || item.event.seq !== index) throw new Failed("an event's position differs from its proof's");
  await verifyInclusion(fromHex(item.leaf_hash), index, size, path, root);
  return form === "withheld" ? { seq: index, form } : { ...item.event, form };
}

async function verifyPackage(bytes, vkey, origin) {
  const files = unzip(bytes); // 1
  const manifestBytes = files.get("manifest.json");
  const manifest = JSON.parse(utf8.decode(manifestBytes));
  const listed = new Map(manifest.files.map((f) => [f.path, f]));
  for (const [name, entry] of listed) { // 2
    const data = files.get(name);
    if (!data) throw new Failed(`${name} is listed in the manifest but missing`);
    if (data.length !== entry.size || hex(await sha256(data)) !== entry.sha256) {
      throw new Failed(`${name} has been modified (its SHA-256 or size differs from the manifest)`);
    }
  }
  const extra = [...files.keys()].filter((n) => !listed.has(n) && !RECORDS.includes(n) && !NOTES.includes(n));
  if (extra.length) throw new Failed(`files not in the manifest: ${extra.join(", ")}`);
  const sums = new Map(utf8.decode(files.get("SHA256SUMS")).split("\n").filter(Boolean)
    .map((line) => [line.slice(line.indexOf("  ") + 2), line.slice(0, line.indexOf("  "))]));
  if (sums.size !== listed.size || [...listed].some(([n, e]) => sums.get(n) !== e.sha256)) { // 3
    throw new Failed("SHA256SUMS does not agree with the manifest");
  }
  const documentJson = JSON.parse(utf8.decode(files.get("custody-certificate.json")));
  const signer = await verifierKey(vkey); // 4
  const text = await openNote(documentJson.signed_note, signer);
  const header = text.slice(0, text.indexOf("\n"));
  if (header !== CERTIFICATE_HEADER) throw new Failed("custody-certificate.json is not an evidence-vault custody certificate");
  const payload = JSON.parse(text.slice(text.indexOf("\n") + 1));
  if (canonical(payload) !== canonical(documentJson.certificate)) throw new Failed("the certificate differs from what was signed");
  if (payload.manifest_sha256 !== hex(await sha256(manifestBytes))) throw new Failed("the certificate is for a different manifest");
  if (!CERTIFICATE_FORMATS.includes(payload.format || CERTIFICATE_FORMATS[0])) throw new Failed("unknown certificate format");
  const cache = new Map();
  const events = [];
  for (const item of payload.events) events.push(await certificateEvent(item, signer, origin, cache)); // 5
  const seen = events.filter((e) => e.form !== "withheld");
  for (const [name, entry] of listed) { // 6 (the hashes the log recorded)
    if (entry.role === "playable") continue;
    if (!seen.some((e) => e.hashes && e.hashes[entry.recording_id] === entry.sha256)) {
      throw new Failed(`${name}: no custody event in the signed log recorded its SHA-256`);
    }
  }
  if (!seen.some((e) => e.action === "exported" && e.details && e.details.manifest_sha256 === payload.manifest_sha256)) {
    throw new Failed("no 'exported' custody event names this manifest");
  }
  return { files: listed.size, events: events.length, size: cache.size ? [...cache.values()].at(-1).size : 0 };
}

function show(verdict, text) {
  result.dataset.verdict = verdict;
  result.textContent = text;
}

if (input && result && globalThis.crypto && crypto.subtle) {
  const known = new Map(
    [...document.querySelectorAll("code.ev-sha")].map((c) => [c.textContent.trim(), c]));
  input.addEventListener("change", async () => {
    const file = input.files && input.files[0];
    if (!file) return;
    delete result.dataset.verdict;
    delete result.dataset.matches;
    result.textContent = `Checking ${file.name}…`;
    const bytes = new Uint8Array(await file.arrayBuffer());
    const isZip = bytes.length > 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04;
    if (isZip) {
      try {
        const done = await verifyPackage(bytes, result.dataset.verifierKey, result.dataset.origin);
        show("pass", `${file.name} passes: ${done.files} files intact and as listed, the custody certificate is signed by this vault's key, and all ${done.events} custody events are in its signed log.`);
      } catch (error) {
        const why = error instanceof Failed ? error.message : `it could not be read (${error})`;
        show("fail", `${file.name} does NOT pass: ${why}. Do not rely on it; ask the sender for a new copy.`);
      }
      return;
    }
    const digest = hex(await sha256(bytes));
    const match = known.get(digest);
    result.dataset.sha256 = digest;
    result.dataset.matches = match ? "yes" : "no";
    result.textContent = match
      ? `${file.name} matches: its SHA-256 is ${digest}, as shared.`
      : `${file.name} does NOT match any recording shared here (SHA-256 ${digest}). Do not rely on it; ask the sender for a new copy.`;
  });
}
