#include "core/byte-source.h"

#include "core/error.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace muse {
namespace {

class FileDescriptor {
public:
    explicit FileDescriptor(int fd) : fd_(fd) {}
    ~FileDescriptor() { if (fd_ >= 0) ::close(fd_); }
    FileDescriptor(const FileDescriptor &) = delete;
    FileDescriptor &operator=(const FileDescriptor &) = delete;
    int get() const { return fd_; }

private:
    int fd_;
};

class MappedSource final : public ByteSource {
public:
    MappedSource(void *base, uint64_t size, std::string path) : base_(base) {
        size_ = size;
        description_ = std::move(path);
    }
    ~MappedSource() override { ::munmap(base_, size_); }
    void read(uint64_t offset, void *dst, size_t n) const override {
        std::memcpy(dst, static_cast<const uint8_t *>(base_) + offset, n);
    }
    const uint8_t *data() const override { return static_cast<const uint8_t *>(base_); }
    // Whole pages inside the range only: a page shared with a neighbouring tensor stays.
    void release(uint64_t offset, size_t n) const override {
        const auto page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
        const uint64_t first = (offset + page - 1) / page * page, end = (offset + n) / page * page;
        if (end > first) ::madvise(static_cast<uint8_t *>(base_) + first, end - first, MADV_DONTNEED);
    }

private:
    void *base_;
};

class PreadSource final : public ByteSource {
public:
    PreadSource(int fd, uint64_t size, std::string path) : fd_(fd) {
        size_ = size;
        description_ = std::move(path);
    }
    void read(uint64_t offset, void *dst, size_t n) const override {
        auto *out = static_cast<uint8_t *>(dst);
        while (n > 0) {
            const ssize_t got = ::pread(fd_.get(), out, n, static_cast<off_t>(offset));
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0)
                fail(MUSE_ERR_IO, description_, ": read failed at offset ", offset,
                     got < 0 ? std::string(": ") + std::strerror(errno) : std::string(": file shrank"));
            out += got;
            offset += static_cast<uint64_t>(got);
            n -= static_cast<size_t>(got);
        }
    }

private:
    FileDescriptor fd_;
};

class MemorySource final : public ByteSource {
public:
    MemorySource(const void *data, size_t size, std::string description) : data_(data) {
        size_ = size;
        description_ = std::move(description);
    }
    void read(uint64_t offset, void *dst, size_t n) const override {
        std::memcpy(dst, static_cast<const uint8_t *>(data_) + offset, n);
    }
    const uint8_t *data() const override { return static_cast<const uint8_t *>(data_); }

private:
    const void *data_;
};

} // namespace

std::unique_ptr<ByteSource> open_file_source(const std::string &path, bool use_mmap) {
    const int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (raw < 0) fail(MUSE_ERR_IO, "cannot open '", path, "': ", std::strerror(errno));
    auto fd = std::make_unique<FileDescriptor>(raw);
    struct stat st {};
    if (::fstat(fd->get(), &st) != 0) fail(MUSE_ERR_IO, "cannot stat '", path, "': ", std::strerror(errno));
    if (!S_ISREG(st.st_mode)) fail(MUSE_ERR_IO, "'", path, "' is not a regular file");
    const auto size = static_cast<uint64_t>(st.st_size);
    if (use_mmap && size > 0) {
        void *base = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd->get(), 0);
        if (base != MAP_FAILED) return std::make_unique<MappedSource>(base, size, path);
        // Fall through to pread: some file systems cannot be mapped.
    }
    const int dup_fd = ::dup(fd->get());
    if (dup_fd < 0) fail(MUSE_ERR_IO, "dup failed for '", path, "'");
    return std::make_unique<PreadSource>(dup_fd, size, path);
}

std::unique_ptr<ByteSource> memory_source(const void *data, size_t size, std::string description) {
    return std::make_unique<MemorySource>(data, size, std::move(description));
}

} // namespace muse
