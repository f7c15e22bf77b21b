#pragma once

#include <stdexcept>
#include <string>

/// One exception hierarchy for the whole library, rooted in std::runtime_error.
/// Every message starts with "siamese:" and names the file, shape or value that was wrong,
/// so that logs can be grepped for it.
namespace siamese {

/// Base of every error the library throws on purpose.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error("siamese: " + message) {}
};

/// A file is missing, unreadable or empty.
class FileError : public Error {
 public:
  using Error::Error;
};

/// A model file is not a loadable TorchScript archive, or its network misbehaves.
class ModelError : public Error {
 public:
  using Error::Error;
};

/// A verdict was asked of a backbone that has no head or threshold fitted to its distances
/// (no calibration, no published threshold): its distances are all it can give.
class UncalibratedModelError : public ModelError {
 public:
  using ModelError::ModelError;
};

/// A backbone's siamese.json is absent where needed, malformed, or contradicts the network.
class MetadataError : public ModelError {
 public:
  using ModelError::ModelError;
};

/// A tensor has the wrong rank, size or dtype for the operation.
class ShapeError : public Error {
 public:
  using Error::Error;
};

/// A network produced NaN or infinite values.
class NumericError : public Error {
 public:
  using Error::Error;
};

/// An image cannot be decoded, is empty, or is beyond the configured limits.
class ImageError : public Error {
 public:
  using Error::Error;
};

/// A gallery file or database is damaged, foreign, from another model or schema, or beyond
/// the limits; nothing was changed.
class GalleryError : public Error {
 public:
  using Error::Error;
};

/// A gallery database stayed locked by other processes through every retry; nothing was
/// changed, and trying again later may succeed.
class GalleryBusyError : public GalleryError {
 public:
  using GalleryError::GalleryError;
};

/// A gallery server cannot be reached, or the connection to it was lost; nothing was changed
/// unless the message says the outcome of a commit is unknown. Trying again later may succeed.
class GalleryUnavailableError : public GalleryError {
 public:
  using GalleryError::GalleryError;
};

/// A gallery server refused the login (wrong password, unknown user or database, pg_hba.conf).
class GalleryLoginError : public GalleryError {
 public:
  using GalleryError::GalleryError;
};

/// A requested device is not available in this build or on this machine.
class DeviceError : public Error {
 public:
  using Error::Error;
};

}  // namespace siamese
