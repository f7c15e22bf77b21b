// faceapi_peer: the JavaScript original of the library's three face networks, face-api.js
// (@vladmandic/face-api) on TensorFlow.js's WebAssembly backend in Node, timed on the same
// photos as the library: photos per second from JPEG file to 128-d descriptor, decoding
// included (jpeg-js), one face per photo (detectSingleFace with the tiny face detector at
// --input-size, 68 landmarks, descriptor). tools/run-benchmarks.sh runs it beside
// pipeline_breakdown --peer-list, which times the library on the same list and work.
//
// Setup (pure JavaScript and WebAssembly, no native builds; tools/run-benchmarks.sh does it):
//   npm install @vladmandic/face-api@1.7.15 @tensorflow/tfjs@4.22.0 \
//     @tensorflow/tfjs-backend-wasm@4.22.0 jpeg-js@0.4.4
// Usage: node benchmarks/faceapi_peer.mjs NODE_MODULES_DIR PHOTO_LIST [--input-size 256]
// PHOTO_LIST: one JPEG path per line. Prints "key<TAB>value" lines.
import { createRequire } from 'module';
import fs from 'fs';
import path from 'path';

const [modulesArg, listFile, ...flags] = process.argv.slice(2);
if (!modulesArg || !listFile) {
  console.error('usage: node benchmarks/faceapi_peer.mjs NODE_MODULES_DIR PHOTO_LIST [--input-size 256]');
  process.exit(2);
}
const inputSize = flags[0] === '--input-size' ? Number(flags[1]) : 256;
const modules = path.resolve(modulesArg);
const require = createRequire(path.join(modules, 'noop.js'));
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');
const wasm = require('@tensorflow/tfjs-backend-wasm');
const jpeg = require('jpeg-js');
const { tf } = faceapi;

wasm.setWasmPaths(path.join(modules, '@tensorflow/tfjs-backend-wasm/dist/'));
await tf.setBackend('wasm');
await tf.ready();
const modelDir = path.join(modules, '@vladmandic/face-api/model');
await faceapi.nets.tinyFaceDetector.loadFromDisk(modelDir);
await faceapi.nets.faceLandmark68Net.loadFromDisk(modelDir);
await faceapi.nets.faceRecognitionNet.loadFromDisk(modelDir);

const photos = fs.readFileSync(listFile, 'utf8').split('\n').filter((line) => line.length > 0);
const options = new faceapi.TinyFaceDetectorOptions({ inputSize });

async function describe(file) {
  const { width, height, data } = jpeg.decode(fs.readFileSync(file), { useTArray: true, formatAsRGBA: false });
  const image = tf.tensor3d(data, [height, width, 3], 'int32');
  try {
    return await faceapi.detectSingleFace(image, options).withFaceLandmarks().withFaceDescriptor();
  } finally {
    image.dispose();
  }
}

// The first calls compile the WebAssembly kernels: warm up on a few photos, untimed.
for (const file of photos.slice(0, 3)) await describe(file);
let faces = 0;
const start = process.hrtime.bigint();
for (const file of photos) if (await describe(file)) ++faces;
const seconds = Number(process.hrtime.bigint() - start) / 1e9;

console.log(`version\t@vladmandic/face-api ${faceapi.version}, tfjs ${tf.version_core}`);
console.log(`backend\t${tf.getBackend()}`);
console.log(`simd\t${await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')}`);
console.log(`multithread\t${await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT')}`);
console.log(`photos\t${photos.length}`);
console.log(`faces\t${faces}`);
console.log(`seconds\t${seconds.toFixed(3)}`);
console.log(`photos_per_second\t${(photos.length / seconds).toFixed(2)}`);
