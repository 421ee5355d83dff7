// Where GGUF bytes come from: a memory-mapped file, a file read with pread, or a
// caller's memory buffer. The GGUF parser only sees this interface, so the same
// bounds-checked code runs for all three.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace muse {

class ByteSource {
public:
    virtual ~ByteSource() = default;
    uint64_t size() const { return size_; }
    // Copies n bytes at offset into dst. Throws muse::Error (MUSE_ERR_IO / FORMAT) on
    // a short read; the caller has already checked offset + n <= size().
    virtual void read(uint64_t offset, void *dst, size_t n) const = 0;
    // The whole content if it is addressable (mmap or memory), else nullptr.
    virtual const uint8_t *data() const { return nullptr; }
    const std::string &description() const { return description_; }
    // Says that [offset, offset + n) of data() will not be read for a while: a mapped file
    // drops those pages from the process (they are read again from the file if touched).
    // Memory that is not a file mapping is left alone.
    virtual void release(uint64_t offset, size_t n) const {}

protected:
    uint64_t size_ = 0;
    std::string description_;
};

// Opens a file; maps it if use_mmap and mapping works, else falls back to pread.
std::unique_ptr<ByteSource> open_file_source(const std::string &path, bool use_mmap);

// Wraps caller memory (not copied: it must outlive the source).
std::unique_ptr<ByteSource> memory_source(const void *data, size_t size, std::string description);

} // namespace muse
