// Computes reference outputs with the JavaScript library itself, for the golden tests of the
// converted networks (tests/test_models.cpp reads the output): face descriptors of the
// recognition net, raw outputs of the 68-point landmark net and of the tiny face detector.
//
// Setup (pure JS, no native downloads):
//   npm install @vladmandic/face-api@1.7.15 @tensorflow/tfjs@4.22.0 @tensorflow/tfjs-backend-wasm@4.22.0
// Usage: node tools/faceapi_golden.mjs NODE_MODULES_DIR > tests/data/faceapi_golden.json
//
// Inputs are synthetic RGB images (150x150, 112x112 and 416x416) defined by a formula (goldenPixel below, repeated
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
function loadNet(net, model) {
  const manifest = JSON.parse(fs.readFileSync(path.join(modelDir, `${model}-weights_manifest.json`)));
  const specs = manifest.flatMap((group) => group.weights);
  const data = Buffer.concat(manifest.flatMap((group) => group.paths.map((p) => fs.readFileSync(path.join(modelDir, p)))));
  net.loadFromWeightMap(tf.io.decodeWeights(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength), specs));
  return net;
}

function goldenImage(s, side) {
  const pixels = new Float32Array(side * side * 3);
  let i = 0;
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      for (let c = 0; c < 3; c++) pixels[i++] = goldenPixel(s, y, x, c);
    }
  }
  return tf.tensor4d(pixels, [1, side, side, 3]);
}

async function rawOutput(side, run) {
  const image = goldenImage(0, side);
  const output = run(await faceapi.toNetInput(image));
  const values = Array.from(await output.data());
  image.dispose();
  output.dispose();
  return values;
}

const recognition = loadNet(new faceapi.FaceRecognitionNet(), 'face_recognition_model');
const descriptors = [];
for (let s = 0; s < IMAGES; s++) {
  const image = goldenImage(s, SIDE);
  descriptors.push(Array.from(await recognition.computeFaceDescriptor(image.squeeze([0]))));
  image.dispose();
}
const landmarks = loadNet(new faceapi.FaceLandmark68Net(), 'face_landmark_68_model');
const detector = loadNet(new faceapi.TinyFaceDetector(), 'tiny_face_detector_model');
console.log(JSON.stringify({
  source: '@vladmandic/face-api@1.7.15, @tensorflow/tfjs@4.22.0 cpu backend',
  side: SIDE,
  descriptors,
  // Raw network outputs for goldenImage(0, side): landmarks [136] (x, y interleaved, 0..1 of
  // the input); detector [13, 13, 25] flattened in NHWC order (TensorFlow's layout).
  landmarks: { side: 112, output: await rawOutput(112, (input) => landmarks.runNet(input)) },
  tiny_detector: { side: 416, output: await rawOutput(416, (input) => detector.forwardInput(input, 416)) },
}));
