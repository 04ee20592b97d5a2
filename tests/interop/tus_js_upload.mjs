// Uploads a file with tus-js-client from Node: node tus_js_upload.mjs ENDPOINT FILE PARALLEL CHUNK
// Prints the upload URL on success; exits 1 with the error otherwise. TUS_AUTHORIZATION, when
// set, is sent as the Authorization header of every request (a bearer token).
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { createRequire } from "node:module";

const require = createRequire(process.env.TUS_JS_CLIENT_DIR + "/");
const tus = require("tus-js-client");

const [endpoint, file, parallel, chunk] = process.argv.slice(2);
const data = readFileSync(file);

const upload = new tus.Upload(data, {
  endpoint,
  parallelUploads: Number(parallel),
  chunkSize: Number(chunk),
  retryDelays: [0, 500, 1000],
  metadata: { filename: basename(file), filetype: "application/octet-stream" },
  headers: process.env.TUS_AUTHORIZATION ? { Authorization: process.env.TUS_AUTHORIZATION } : {},
  onError(error) {
    console.error(String(error));
    process.exit(1);
  },
  onSuccess() {
    console.log(upload.url);
  },
});
upload.start();
