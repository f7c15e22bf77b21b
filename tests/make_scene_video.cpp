// Writes the crossing scene of video_scene.hpp (two people from the example photos entering,
// crossing and leaving a 640x480 frame; 100 frames of MJPG AVI, and with FRAMES_DIR the same
// frames as JPEG files), for the watch example's tests.
// Usage: make_scene_video MODELS_DIR PHOTOS_DIR OUT.avi [FRAMES_DIR]
#include "video_scene.hpp"

#include <iostream>

int main(int argc, char** argv) {
  if (argc != 4 && argc != 5) {
    std::cerr << "usage: make_scene_video MODELS_DIR PHOTOS_DIR OUT.avi [FRAMES_DIR]\n";
    return 2;
  }
  try {
    auto pipeline = siamese::FacePipeline::from_models(argv[1], {}, siamese::Device::cpu());
    const std::filesystem::path photos = argv[2];
    const auto walkers = video_scene::crossing(video_scene::head_from(pipeline, photos / "obama.jpg", 160), "obama",
                                               video_scene::head_from(pipeline, photos / "biden.jpg", 160), "biden");
    video_scene::write_avi(walkers, 100, argv[3]);
    if (argc == 5) video_scene::write_frames(walkers, 100, argv[4]);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "make_scene_video: " << e.what() << '\n';
    return 1;
  }
}
