// tus-js-client speaking the IETF draft (protocol "ietf-draft-05", interop version 6) from Node.
//   node tus_js_ietf.mjs start ENDPOINT FILE CHUNK   uploads until half the file is sent, aborts,
//                                                    prints the upload URL
//   node tus_js_ietf.mjs resume URL FILE CHUNK       resumes that upload from the server's offset,
//                                                    prints "<url> <offset resumed from>"
// Exits 1 with the error otherwise.
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { createRequire } from "node:module";

const require = createRequire(process.env.TUS_JS_CLIENT_DIR + "/");
const tus = require("tus-js-client");

const [mode, target, file, chunk] = process.argv.slice(2);
const data = readFileSync(file);
const half = Math.floor(data.length / 2);
let resumedFrom = null;

const options = {
  protocol: "ietf-draft-05",
  chunkSize: Number(chunk),
  retryDelays: [0, 500, 1000],
  metadata: { filename: basename(file), filetype: "application/octet-stream" },
  onError(error) {
    console.error(String(error));
    process.exit(1);
  },
  onAfterResponse(req, res) {
    if (mode === "resume" && req.getMethod() === "HEAD" && resumedFrom === null) {
      resumedFrom = res.getHeader("Upload-Offset");
    }
  },
  onSuccess() {
    console.log(`${upload.url} ${resumedFrom}`);
  },
};
if (mode === "start") {
  options.endpoint = target;
  options.onProgress = (sent) => {
    if (sent >= half && upload.url) {
      upload.abort().then(() => {
        console.log(upload.url);
        process.exit(0);
      });
    }
  };
} else {
  options.uploadUrl = target;
}
const upload = new tus.Upload(data, options);
upload.start();
