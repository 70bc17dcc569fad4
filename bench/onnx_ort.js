// onnx_ort.js - ONNX Runtime's side of bin/bench_onnx: times one model on
// the CPU execution provider, a batch of rows and single rows, with a given
// number of intra-op threads. Prints one JSON line:
//   {"batch_ms": median of reps batch runs, "single_us": mean per single-row run}
// and writes the batch's outputs to OUT (float32) for the agreement check.
// Usage: node onnx_ort.js MODEL X.f32 ROWS COLS THREADS REPS SINGLES OUT
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require(path.join(__dirname, '..', 'tools', 'node_modules', 'onnxruntime-node'));

async function main() {
	const [model, xf, rowsS, colsS, thrS, repsS, singlesS, out] = process.argv.slice(2);
	const rows = +rowsS, cols = +colsS, reps = +repsS, singles = +singlesS;
	const s = await ort.InferenceSession.create(model, {
		intraOpNumThreads: +thrS, interOpNumThreads: 1, executionProviders: ['cpu'],
		graphOptimizationLevel: 'all' });
	const buf = fs.readFileSync(xf);
	const x = new Float32Array(buf.buffer, buf.byteOffset, rows * cols);
	const inName = s.inputNames[0], outName = s.outputNames[0];
	const batch = new ort.Tensor('float32', x, [rows, cols]);
	let y = (await s.run({ [inName]: batch }))[outName].data;   // warm-up
	const times = [];
	for (let r = 0; r < reps; r++) {
		const t0 = process.hrtime.bigint();
		y = (await s.run({ [inName]: batch }))[outName].data;
		times.push(Number(process.hrtime.bigint() - t0) / 1e6);
	}
	times.sort((a, b) => a - b);
	const one = [];
	for (let i = 0; i < Math.min(singles, rows); i++)
		one.push(new ort.Tensor('float32', x.subarray(i * cols, (i + 1) * cols), [1, cols]));
	for (let i = 0; i < Math.min(100, one.length); i++)
		await s.run({ [inName]: one[i] });                          // warm-up
	const t0 = process.hrtime.bigint();
	for (let i = 0; i < singles; i++)
		await s.run({ [inName]: one[i % one.length] });
	const single = Number(process.hrtime.bigint() - t0) / 1e3 / singles;
	fs.writeFileSync(out, Buffer.from(y.buffer, y.byteOffset, y.byteLength));
	console.log(JSON.stringify({ batch_ms: times[Math.floor(times.length / 2)], single_us: single }));
}
main().catch((e) => { console.error(String(e)); process.exit(1); });
