# The Jinja chat-template engine (src/jinja/jinja*.cpp): unit tests, and a
# conformance test rendering every template in shared/templates against
# Python's jinja2 configured as Hugging Face transformers configures it.
add_executable(jinja-render tools/jinja-render.cpp)
target_link_libraries(jinja-render PRIVATE muse_internal)

muse_cpp_test(test-jinja muse_internal)

# python/test_jinja_templates.py runs with the other pytest files (tests/CMakeLists.txt);
# it finds jinja-render next to the library under test (or via MUSE_JINJA_RENDER).
