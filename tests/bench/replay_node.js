// SPDX-License-Identifier: MIT
// replay_node: feeds the frames of a capture file (fetcher/capture.h) to the
// npm client bilibili-live-ws, one frame at a time, through the very path its
// LiveWS takes for each WebSocket binary frame: the frame is emitted as
// 'message' on the client's Live object, whose handler runs the client's
// packet decoder (header, zlib/brotli via Node's zlib, inner packets,
// JSON.parse) and emits 'msg' per op-5 message. Used by bench_replay_node.sh;
// the client is installed by that script into a temporary directory.
//   node replay_node.js CLIENT_PREFIX CAPTURE EXPECTED_MESSAGES [PASSES]
// Prints one line per pass and, last, "result MESSAGES WALL_S CPU_S VERSION"
// (the client's) for the last pass (the JIT has warmed up on the passes before it). Exits 1 when a
// pass does not yield exactly EXPECTED_MESSAGES messages with a cmd.
'use strict';

const fs = require('fs');
const path = require('path');

const [prefix, capPath, expectedArg, passesArg] = process.argv.slice(2);
if (!prefix || !capPath || !expectedArg) {
	console.error('usage: node replay_node.js CLIENT_PREFIX CAPTURE EXPECTED_MESSAGES [PASSES]');
	process.exit(2);
}
const expected = Number(expectedArg);
const passes = Math.max(1, Number(passesArg || 2));

// The modules LiveWS is made of: Live (the per-connection object with the
// frame handler) and the Node inflate functions LiveWS hands it.
const pkg = path.join(path.resolve(prefix), 'node_modules', 'bilibili-live-ws');
const { Live } = require(path.join(pkg, 'src', 'common'));
const { inflates } = require(path.join(pkg, 'src', 'inflate', 'node'));
const version = require(path.join(pkg, 'package.json')).version;

// Capture records: u64 LE receive time, u32 LE length, the frame.
function readFrames(file) {
	const buf = fs.readFileSync(file);
	const frames = [];
	let off = 0;
	while (off < buf.length) {
		if (buf.length - off < 12)
			throw new Error(`${file}: truncated record header at ${off}`);
		const len = buf.readUInt32LE(off + 8);
		if (buf.length - off - 12 < len)
			throw new Error(`${file}: truncated record at ${off}`);
		frames.push(buf.subarray(off + 12, off + 12 + len));
		off += 12 + len;
	}
	return frames;
}

// The frame handler is an async listener nobody awaits, as with a socket. To
// hand over the next frame only when the previous one is fully decoded (one
// frame in flight: the one-core comparison), count the inflates in flight;
// once none is left, the rest of the handler is promise continuations, all
// run before the next setImmediate.
let inFlight = 0;
let wake = null;
function counted(fn) {
	return (buf) => {
		inFlight++;
		return fn(buf).finally(() => {
			if (--inFlight === 0 && wake) {
				const w = wake;
				wake = null;
				w();
			}
		});
	};
}
const countedInflates = {
	...inflates,
	inflateAsync: counted(inflates.inflateAsync),
	brotliDecompressAsync: counted(inflates.brotliDecompressAsync),
};

async function idle() {
	while (inFlight > 0)
		await new Promise((resolve) => { wake = resolve; });
	await new Promise(setImmediate);
}

async function pass(frames) {
	const live = new Live(countedInflates, 21452505, { send() {}, close() {} });
	let msgs = 0, withCmd = 0;
	live.on('msg', (data) => {
		msgs++;
		if (data && (data.cmd || (data.msg && data.msg.cmd)))
			withCmd++;
	});
	const c0 = process.cpuUsage();
	const t0 = process.hrtime.bigint();
	for (const f of frames) {
		live.emit('message', f);
		await idle();
	}
	const wall = Number(process.hrtime.bigint() - t0) / 1e9;
	const c = process.cpuUsage(c0);
	live.emit('close'); // the client's own cleanup (its heartbeat timer)
	return { msgs, withCmd, wall, cpu: (c.user + c.system) / 1e6 };
}

(async () => {
	const frames = readFrames(capPath);
	let r;
	for (let i = 1; i <= passes; i++) {
		r = await pass(frames);
		console.log(`replay_node: bilibili-live-ws ${version}, node ${process.version}, pass ${i}: ` +
			`${frames.length} frames, ${r.msgs} messages, ${r.wall.toFixed(2)} s wall, ` +
			`${r.cpu.toFixed(2)} s cpu -> ${Math.round(r.msgs / r.wall)} msg/s (wall), ` +
			`${Math.round(r.msgs / r.cpu)} msg/s (cpu)`);
		if (r.msgs !== expected || r.withCmd !== expected) {
			console.error(`replay_node: expected ${expected} messages, got ${r.msgs} (${r.withCmd} with a cmd)`);
			process.exit(1);
		}
	}
	console.log(`result ${r.msgs} ${r.wall} ${r.cpu} ${version}`);
})().catch((e) => {
	console.error(`replay_node: ${e && e.stack || e}`);
	process.exit(1);
});
