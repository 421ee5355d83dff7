# stb_image comes from Debian's libstb-dev (stb_image 2.27, 2022). That version
# has bugs hostile files reach; later upstream releases fixed most of them. The
# build compiles a copy of the system header with those fixes applied
# (build/src/image/muse-stb-image.h, included only by image/decode.cpp). Each fix
# replaces one exact, unique snippet; if the system header ever changes so that
# a snippet is gone, configuring fails here and names the fix to revisit.
find_path(MUSE_STB_INCLUDE_DIR stb/stb_image.h REQUIRED)
set(MUSE_STB_IMAGE_IN ${MUSE_STB_INCLUDE_DIR}/stb/stb_image.h)
set(MUSE_STB_IMAGE_OUT ${CMAKE_CURRENT_BINARY_DIR}/image/muse-stb-image.h)

function(muse_stb_fix var what old new)
  string(FIND "${${var}}" "${old}" first)
  string(FIND "${${var}}" "${old}" last REVERSE)
  if(first EQUAL -1 OR NOT first EQUAL last)
    message(FATAL_ERROR "${MUSE_STB_IMAGE_IN}: the code the stb fix '${what}' replaces is missing or not unique; "
                        "update src/image/stb-image.cmake for this stb_image version")
  endif()
  string(REPLACE "${old}" "${new}" out "${${var}}")
  set(${var} "${out}" PARENT_SCOPE)
endfunction()

file(READ ${MUSE_STB_IMAGE_IN} stb)

# 1. JPEG DHT: the 16 code counts are not checked to sum to <= 256 before the
#    table is built, which writes past stbi__huffman::size[257] (upstream 2.28).
muse_stb_fix(stb "DHT code count" [==[
               n += sizes[i];
            }
            L -= 17;]==] [==[
               n += sizes[i];
            }
            if (n > 256) return stbi__err("bad DHT header","Corrupt JPEG"); /* muse: fix 1 */
            L -= 17;]==])

# 2. JPEG Huffman decode: a code outside the table gives a symbol id outside
#    [0, 256) that is then used as an index (upstream 2.28).
muse_stb_fix(stb "Huffman symbol range" [==[
   c = ((j->code_buffer >> (32 - k)) & stbi__bmask[k]) + h->delta[k];
   STBI_ASSERT(]==] [==[
   c = ((j->code_buffer >> (32 - k)) & stbi__bmask[k]) + h->delta[k];
   if (c < 0 || c >= 256) return -1; /* muse: fix 2 */
   STBI_ASSERT(]==])

# 3. JPEG bit reader: reading more bits than the stream has left drives
#    code_bits negative, and the next refill shifts by 32 or more (undefined;
#    found by fuzz-image). Out of bits now reads zeros, as upstream 2.28 does,
#    and the fast AC paths refuse a code longer than the bits available.
muse_stb_fix(stb "extend_receive out of bits" [==[
   if (j->code_bits < n) stbi__grow_buffer_unsafe(j);

   sgn = j->code_buffer >> 31;]==] [==[
   if (j->code_bits < n) stbi__grow_buffer_unsafe(j);
   if (j->code_bits < n) return 0; /* muse: fix 3 */

   sgn = j->code_buffer >> 31;]==])
muse_stb_fix(stb "get_bits out of bits" [==[
   if (j->code_bits < n) stbi__grow_buffer_unsafe(j);
   k = stbi_lrot(j->code_buffer, n);]==] [==[
   if (j->code_bits < n) stbi__grow_buffer_unsafe(j);
   if (j->code_bits < n) return 0; /* muse: fix 3 */
   k = stbi_lrot(j->code_buffer, n);]==])
muse_stb_fix(stb "get_bit out of bits" [==[
   if (j->code_bits < 1) stbi__grow_buffer_unsafe(j);
   k = j->code_buffer;]==] [==[
   if (j->code_bits < 1) stbi__grow_buffer_unsafe(j);
   if (j->code_bits < 1) return 0; /* muse: fix 3 */
   k = j->code_buffer;]==])
muse_stb_fix(stb "baseline fast AC length" [==[
         s = r & 15; // combined length
         j->code_buffer <<= s;]==] [==[
         s = r & 15; // combined length
         if (s > j->code_bits) return stbi__err("bad huffman code", "Corrupt JPEG"); /* muse: fix 3 */
         j->code_buffer <<= s;]==])
muse_stb_fix(stb "progressive fast AC length" [==[
            s = r & 15; // combined length
            j->code_buffer <<= s;]==] [==[
            s = r & 15; // combined length
            if (s > j->code_bits) return stbi__err("bad huffman code", "Corrupt JPEG"); /* muse: fix 3 */
            j->code_buffer <<= s;]==])

# 4. JPEG 4:2:2 chroma: the last output pair of each row weights its two inputs
#    the wrong way round (3 * in[w-2] + in[w-1]), so the second-to-last column is
#    off by up to ~100 levels against libjpeg. Unfixed upstream as of 2.30.
muse_stb_fix(stb "h2v1 upsampling edge" [==[
   out[i*2+0] = stbi__div4(input[w-2]*3 + input[w-1] + 2);]==] [==[
   out[i*2+0] = stbi__div4(input[w-1]*3 + input[w-2] + 2); /* muse: fix 4 */]==])

# 5. Zero-length reads (a PNG whose first IDAT chunk is empty) call
#    memcpy(NULL, src, 0): undefined behaviour (found by fuzz-image).
muse_stb_fix(stb "empty read" [==[
static int stbi__getn(stbi__context *s, stbi_uc *buffer, int n)
{
]==] [==[
static int stbi__getn(stbi__context *s, stbi_uc *buffer, int n)
{
   if (n == 0) return 1; /* muse: fix 5 */
]==])

# 6. PNM header numbers overflow an int (undefined; found by fuzz-image;
#    upstream 2.28). decode.cpp also reads the header first, for its messages.
muse_stb_fix(stb "PNM integer overflow" [==[
      value = value*10 + (*c - '0');]==] [==[
      if (value > 214748364 || (value == 214748364 && *c > '7')) /* muse: fix 6 */
         return stbi__err("integer parse overflow", "Corrupt PNM");
      value = value*10 + (*c - '0');]==])

# 7. PSD un-premultiplying: a colour channel larger than its alpha gives a value past 255,
#    and converting that float to unsigned char is undefined (found by fuzz-image). Clamped.
muse_stb_fix(stb "PSD unpremultiply range" [==[
               pixel[0] = (unsigned char) (pixel[0]*ra + inv_a);
               pixel[1] = (unsigned char) (pixel[1]*ra + inv_a);
               pixel[2] = (unsigned char) (pixel[2]*ra + inv_a);]==] [==[
               /* muse: fix 7 */
               pixel[0] = (unsigned char) stbi__float_clamp255(pixel[0]*ra + inv_a);
               pixel[1] = (unsigned char) stbi__float_clamp255(pixel[1]*ra + inv_a);
               pixel[2] = (unsigned char) stbi__float_clamp255(pixel[2]*ra + inv_a);]==])
muse_stb_fix(stb "PSD unpremultiply clamp helper" [==[
static int stbi__psd_decode_rle(]==] [==[
static float stbi__float_clamp255(float v) { return v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v; } /* muse: fix 7 */

static int stbi__psd_decode_rle(]==])

file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/image/muse-stb-image.h.tmp
     "/* Generated from ${MUSE_STB_IMAGE_IN} by src/image/stb-image.cmake: do not edit. */\n${stb}")
configure_file(${CMAKE_CURRENT_BINARY_DIR}/image/muse-stb-image.h.tmp ${MUSE_STB_IMAGE_OUT} COPYONLY)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${MUSE_STB_IMAGE_IN} ${CMAKE_CURRENT_LIST_FILE})
set_source_files_properties(image/decode.cpp PROPERTIES COMPILE_DEFINITIONS MUSE_STB_IMAGE_H="${MUSE_STB_IMAGE_OUT}")
