# The packages the library needs, found the same way here and in siameseConfig.cmake.
include(GNUInstallDirs)
find_package(Torch REQUIRED)
find_package(OpenCV REQUIRED COMPONENTS core imgproc imgcodecs)
find_package(nlohmann_json 3.9 REQUIRED)
set(SIAMESE_OPENCV_TARGETS opencv_core opencv_imgproc opencv_imgcodecs)
