// ort_run.js - runs ONNX models with ONNX Runtime (onnxruntime-node, CPU).
// Usage: node ort_run.js MANIFEST.json
// The manifest is a list of {"model", "input", "rows", "cols", "output",
// "threads"}: input holds rows x cols little-endian float32 values for the
// model's one input; output gets the model's one output the same way.
// Prints one line per model: its file, input and output names.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require(path.join(__dirname, '..', '..', 'tools', 'node_modules', 'onnxruntime-node'));

async function main() {
	const jobs = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
	for (const j of jobs) {
		const s = await ort.InferenceSession.create(j.model, {
			intraOpNumThreads: j.threads || 1, interOpNumThreads: 1,
			executionProviders: ['cpu'] });
		const buf = fs.readFileSync(j.input);
		const x = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
		const dims = j.dims || [j.rows, j.cols];
		const out = await s.run({ [s.inputNames[0]]: new ort.Tensor('float32', x, dims) });
		const y = out[s.outputNames[0]].data;
		fs.writeFileSync(j.output, Buffer.from(y.buffer, y.byteOffset, y.byteLength));
		console.log(`${path.basename(j.model)} ${s.inputNames[0]} -> ${s.outputNames[0]}`);
	}
}
main().catch((e) => { console.error(String(e)); process.exit(1); });
