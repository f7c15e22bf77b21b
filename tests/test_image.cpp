#include "fixtures.hpp"

#include <catch2/catch.hpp>

#include <opencv2/imgcodecs.hpp>

#include <cstring>

using Approx = Catch::Detail::Approx;

namespace {
std::vector<std::uint8_t> encode(const cv::Mat& image, const std::string& ext) {
  std::vector<std::uint8_t> bytes;
  REQUIRE(cv::imencode(ext, image, bytes));
  return bytes;
}
}  // namespace

TEST_CASE("Decoding normalises every layout to 8-bit RGB", "[image]") {
  cv::Mat bgr(4, 5, CV_8UC3, cv::Scalar(10, 20, 30));  // OpenCV is BGR: R = 30
  const auto rgb = siamese::decode_image(encode(bgr, ".png"), "bgr.png");
  REQUIRE(rgb.type() == CV_8UC3);
  CHECK(rgb.at<cv::Vec3b>(0, 0) == cv::Vec3b(30, 20, 10));

  cv::Mat gray(4, 5, CV_8UC1, cv::Scalar(77));
  CHECK(siamese::decode_image(encode(gray, ".png"), "g").at<cv::Vec3b>(1, 1) ==
        cv::Vec3b(77, 77, 77));

  cv::Mat bgra(4, 5, CV_8UC4, cv::Scalar(10, 20, 30, 128));
  CHECK(siamese::decode_image(encode(bgra, ".png"), "a").at<cv::Vec3b>(2, 2) ==
        cv::Vec3b(30, 20, 10));

  cv::Mat deep(4, 5, CV_16UC3, cv::Scalar(257 * 10, 257 * 20, 257 * 30));
  CHECK(siamese::decode_image(encode(deep, ".png"), "d").at<cv::Vec3b>(3, 3) ==
        cv::Vec3b(30, 20, 10));
}

TEST_CASE("Bad images raise typed errors naming the file", "[image][errors]") {
  fixtures::TempDir dir;
  CHECK_THROWS_AS(siamese::read_image(dir / "missing.jpg"), siamese::FileError);
  fixtures::write_file(dir / "empty.jpg", "");
  CHECK_THROWS_WITH(siamese::read_image(dir / "empty.jpg"),
                    Catch::Contains("empty.jpg") && Catch::Contains("empty"));
  fixtures::write_file(dir / "junk.jpg", "definitely not an image");
  CHECK_THROWS_AS(siamese::read_image(dir / "junk.jpg"), siamese::ImageError);

  const auto jpeg = encode(cv::Mat(64, 64, CV_8UC3, cv::Scalar(1, 2, 3)), ".jpg");
  const std::vector<std::uint8_t> truncated(jpeg.begin(), jpeg.begin() + 20);
  CHECK_THROWS_AS(siamese::decode_image(truncated, "cut.jpg"), siamese::ImageError);

  siamese::ImageLimits small;
  small.max_pixels = 100;
  CHECK_THROWS_WITH(siamese::decode_image(jpeg, "big.jpg", small),
                    Catch::Contains("big.jpg") && Catch::Contains("64x64"));
  small.max_file_bytes = 10;
  CHECK_THROWS_AS(siamese::decode_image(jpeg, "big.jpg", small), siamese::ImageError);
}

TEST_CASE("Every readable format states its size in a header checked before decoding", "[image][errors]") {
  const cv::Mat image(5, 8, CV_8UC3, cv::Scalar(10, 20, 30));
  for (const std::string ext : {".jpg", ".png", ".bmp", ".ppm", ".pgm", ".webp"}) {
    INFO(ext);
    const auto bytes = encode(ext == ".pgm" ? cv::Mat(5, 8, CV_8UC1, cv::Scalar(9)) : image, ext);
    const auto header = siamese::detail::read_image_header(bytes.data(), bytes.size());
    REQUIRE(header.format != nullptr);
    CHECK(header.width == 8);
    CHECK(header.height == 5);
    CHECK(siamese::decode_image(bytes, "image" + ext).size() == cv::Size(8, 5));
  }
  // Headers claiming 100000 x 100000 pixels are refused before any decoder allocates them.
  const std::string pnm = "P6\n# a comment\n100000 100000\n255\n";
  CHECK_THROWS_WITH(siamese::decode_image(std::vector<std::uint8_t>(pnm.begin(), pnm.end()), "bomb.ppm"),
                    Catch::Contains("bomb.ppm") && Catch::Contains("100000x100000"));
  auto bmp = encode(image, ".bmp");
  for (int at : {18, 22}) {
    const std::uint32_t side = 100000;
    std::memcpy(bmp.data() + at, &side, 4);
  }
  CHECK_THROWS_WITH(siamese::decode_image(bmp, "bomb.bmp"), Catch::Contains("100000x100000"));
  // Formats without a checked header are refused by name, even when OpenCV could read them.
  std::vector<std::uint8_t> tiff;
  if (cv::imencode(".tiff", image, tiff)) {
    CHECK_THROWS_WITH(siamese::decode_image(tiff, "scan.tiff"), Catch::Contains("scan.tiff") && Catch::Contains("format"));
  }
  const auto png = encode(image, ".png");
  const std::vector<std::uint8_t> cut_png(png.begin(), png.begin() + 12);
  CHECK_THROWS_WITH(siamese::decode_image(cut_png, "cut.png"), Catch::Contains("truncated PNG header"));
}

TEST_CASE("Headers are read as OpenCV's decoders read them", "[image][errors]") {
  auto header_of = [](const std::vector<std::uint8_t>& bytes) {
    const auto header = siamese::detail::read_image_header(bytes.data(), bytes.size());
    return std::make_pair(header.width, header.height);
  };
  using Sides = std::pair<std::uint64_t, std::uint64_t>;
  // PNM: a '#' right after a number ends it; it does not start a comment. Found by the fuzzer:
  // read as a comment, this 25-byte file was 259001x2 to the check and 259001x2225 to OpenCV.
  const std::string pnm = "P6 \n259001#2225\xb0" "591P6\n2#1";
  const std::vector<std::uint8_t> pnm_bytes(pnm.begin(), pnm.end());
  CHECK(header_of(pnm_bytes) == Sides(259001, 2225));
  CHECK_THROWS_WITH(siamese::decode_image(pnm_bytes, "bomb.ppm"), Catch::Contains("259001x2225"));
  const std::string commented = "P5\n# width height\r8 # sides\n5\n255\n";
  CHECK(header_of({commented.begin(), commented.end()}) == Sides(8, 5));

  // BMP: an OS/2 core header's sides are unsigned.
  auto bmp = encode(cv::Mat(5, 8, CV_8UC3, cv::Scalar(1, 2, 3)), ".bmp");
  const std::uint8_t core[] = {12, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0x3F};  // size 12, 65535 x 16383
  std::copy(std::begin(core), std::end(core), bmp.begin() + 14);
  CHECK(header_of(bmp) == Sides(65535, 16383));
  CHECK_THROWS_WITH(siamese::decode_image(bmp, "core.bmp"), Catch::Contains("65535x16383"));

  // PNG: sides are read from IHDR only when it is the first chunk.
  auto png = encode(cv::Mat(5, 8, CV_8UC3, cv::Scalar(1, 2, 3)), ".png");
  CHECK(header_of(png) == Sides(8, 5));
  png[12] = 'i';
  CHECK(header_of(png) == Sides(0, 0));

  // JPEG: restart markers have no length field; libjpeg steps over them to the frame header.
  auto jpeg = encode(cv::Mat(5, 8, CV_8UC3, cv::Scalar(1, 2, 3)), ".jpg");
  jpeg.insert(jpeg.begin() + 2, {0xFF, 0xD0});
  CHECK(header_of(jpeg) == Sides(8, 5));
  CHECK(siamese::decode_image(jpeg, "restart.jpg").size() == cv::Size(8, 5));
  // An end marker before the frame header ends the image for libjpeg, and the walk here.
  const std::vector<std::uint8_t> ended = {0xFF, 0xD8, 0xFF, 0xD9, 0x00, 0x02, 0xFF, 0xC0, 0x00, 0x11,
                                           0x08, 0x00, 0x05, 0x00, 0x08, 0x03, 0x01, 0x11, 0x00};
  CHECK(header_of(ended) == Sides(0, 0));
}

TEST_CASE("Bytes that also carry the signature of a format not decoded are refused", "[image][errors]") {
  // OpenCV hands such bytes to GDCM or GDAL when the leading format's decoder declines them,
  // and GDCM aborts on some: found by the decode_image fuzzer.
  auto with_at = [](std::vector<std::uint8_t> bytes, std::size_t at, const std::string& magic) {
    if (bytes.size() < at + magic.size()) bytes.resize(at + magic.size(), 0xFF);
    std::copy(magic.begin(), magic.end(), bytes.begin() + static_cast<std::ptrdiff_t>(at));
    return bytes;
  };
  const cv::Mat image(5, 8, CV_8UC3, cv::Scalar(10, 20, 30));
  for (const std::string ext : {".jpg", ".png", ".webp"}) {
    INFO(ext);
    const auto bytes = encode(image, ext);
    CHECK_THROWS_WITH(siamese::decode_image(with_at(bytes, 128, "DICM"), "polyglot" + ext),
                      Catch::Contains("polyglot" + ext) && Catch::Contains("DICOM"));
    CHECK_THROWS_WITH(siamese::decode_image(with_at(bytes, 140, "DTED"), "polyglot" + ext),
                      Catch::Contains("ambiguous") && Catch::Contains("DTED"));
  }
  // A WebP whose frame header libwebp declines: OpenCV would try the DICOM reader next.
  auto webp = with_at(encode(image, ".webp"), 128, "DICM");
  webp[23] = 0;  // the VP8 start code
  CHECK_THROWS_AS(siamese::decode_image(webp, "broken.webp"), siamese::ImageError);
  // 'P', a digit and no white space is not PNM to OpenCV either: not read as one.
  const auto fake_pnm = with_at({'P', '5', '4', '4', '2', '\n', '6', '6'}, 128, "DICM");
  CHECK(siamese::detail::read_image_header(fake_pnm.data(), fake_pnm.size()).format == nullptr);
  CHECK_THROWS_WITH(siamese::decode_image(fake_pnm, "fake.pgm"), Catch::Contains("unknown or unsupported format"));
}

TEST_CASE("to_input_tensor applies the spec and owns its memory", "[image][preprocess]") {
  siamese::InputSpec spec;
  spec.height = 2;
  spec.width = 3;
  spec.scale = 1.0;
  spec.mean = {100.0, 50.0, 0.0};
  spec.std = {2.0, 1.0, 10.0};
  torch::Tensor tensor;
  {
    cv::Mat rgb(2, 3, CV_8UC3, cv::Scalar(200, 60, 20));  // R=200 G=60 B=20
    tensor = siamese::to_input_tensor(rgb, spec);
  }  // the Mat is gone; the tensor must still hold the values
  REQUIRE(tensor.sizes() == torch::IntArrayRef({1, 3, 2, 3}));
  CHECK(tensor.is_contiguous());
  CHECK(tensor.scalar_type() == torch::kFloat32);
  CHECK(tensor[0][0][1][2].item<double>() == Approx(50.0));   // (200 - 100) / 2
  CHECK(tensor[0][1][0][0].item<double>() == Approx(10.0));   // (60 - 50) / 1
  CHECK(tensor[0][2][1][1].item<double>() == Approx(2.0));    // (20 - 0) / 10

  spec.channel_order = siamese::ChannelOrder::bgr;
  const auto bgr = siamese::to_input_tensor(cv::Mat(2, 3, CV_8UC3, cv::Scalar(200, 60, 20)), spec);
  CHECK(bgr[0][0][0][0].item<double>() == Approx((20.0 - 100.0) / 2.0));

  const auto resized = siamese::to_input_batch(
      {cv::Mat(40, 30, CV_8UC3, cv::Scalar(1, 1, 1)), cv::Mat(5, 5, CV_8UC3)}, spec);
  CHECK(resized.sizes() == torch::IntArrayRef({2, 3, 2, 3}));
  CHECK_THROWS_AS(siamese::to_input_tensor(cv::Mat(2, 2, CV_8UC1), spec), siamese::ImageError);
  CHECK_THROWS_AS(siamese::to_input_batch({}, spec), siamese::ImageError);
}
