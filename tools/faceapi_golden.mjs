// Computes reference face descriptors with the JavaScript library itself, for the golden test
// of the converted network (tests/test_faceapi.cpp reads the output).
//
// Setup (pure JS, no native downloads):
//   npm install @vladmandic/face-api@1.7.15 @tensorflow/tfjs@4.22.0 @tensorflow/tfjs-backend-wasm@4.22.0
// Usage: node tools/faceapi_golden.mjs NODE_MODULES_DIR > tests/data/faceapi_golden.json
//
// Inputs are synthetic 150x150 RGB images defined by a formula (goldenPixel below, repeated
// in the C++ test), fed as raw float NHWC pixels so that no resizing enters the comparison.
import { createRequire } from 'module';
import fs from 'fs';
import path from 'path';

const modules = path.resolve(process.argv[2] ?? 'node_modules');
const require = createRequire(path.join(modules, 'noop.js'));
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');
const tf = faceapi.tf;

const SIDE = 150;
const IMAGES = 3;

// Pixel value in [0, 255] of image s at row y, column x, channel c (RGB).
function goldenPixel(s, y, x, c) {
  return 127.5 + 127.5 * Math.sin(0.031 * (s + 1) * x + 0.047 * y + 2.1 * c + 0.7 * s)
                       * Math.cos(0.023 * (c + 1) * y - 0.011 * s * x);
}

await tf.setBackend('cpu');
await tf.ready();

const modelDir = path.join(modules, '@vladmandic/face-api/model');
const manifest = JSON.parse(fs.readFileSync(path.join(modelDir, 'face_recognition_model-weights_manifest.json')));
const specs = manifest.flatMap((group) => group.weights);
const buffers = manifest.flatMap((group) => group.paths.map((p) => fs.readFileSync(path.join(modelDir, p))));
const data = Buffer.concat(buffers);
const weightMap = tf.io.decodeWeights(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength), specs);
const net = new faceapi.FaceRecognitionNet();
net.loadFromWeightMap(weightMap);

const pixels = new Float32Array(IMAGES * SIDE * SIDE * 3);
let i = 0;
for (let s = 0; s < IMAGES; s++) {
  for (let y = 0; y < SIDE; y++) {
    for (let x = 0; x < SIDE; x++) {
      for (let c = 0; c < 3; c++) pixels[i++] = goldenPixel(s, y, x, c);
    }
  }
}
const descriptors = [];
for (let s = 0; s < IMAGES; s++) {
  const image = tf.tensor3d(pixels.subarray(s * SIDE * SIDE * 3, (s + 1) * SIDE * SIDE * 3), [SIDE, SIDE, 3]);
  descriptors.push(Array.from(await net.computeFaceDescriptor(image)));
  image.dispose();
}
console.log(JSON.stringify({
  source: '@vladmandic/face-api@1.7.15 FaceRecognitionNet, @tensorflow/tfjs@4.22.0 cpu backend',
  side: SIDE,
  descriptors,
}));
