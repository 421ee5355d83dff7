# The pip package (tests/package) and the Ray Serve example (tests/ray), on the bundled model.
# Not in sanitizer builds: the wheel bundles an uninstrumented Release libmuse, and Ray's many
# processes do not run under a preloaded sanitizer runtime.
set(MUSE_NANO_MODEL ${PROJECT_SOURCE_DIR}/models/muse-glimmer-nano.gguf)
if(MUSE_BUILD_SHARED AND NOT MUSE_SANITIZE AND EXISTS ${MUSE_NANO_MODEL})
  if(TARGET muse-server)
    set(muse_server_built 1)
  else()
    set(muse_server_built 0)
  endif()
  # The wheel build reuses this tree (its libmuse and muse-server are already built, so only
  # configure and install run): scikit-build-core reconfigures it, which the test undoes after.
  # install-consumer installs from the same tree, so the two never run at once.
  add_test(NAME python-package COMMAND ${MUSE_PYTHON} -m pytest -q -p no:cacheprovider
           ${CMAKE_CURRENT_SOURCE_DIR}/package/test_package.py)
  set_tests_properties(python-package PROPERTIES TIMEOUT 600 RESOURCE_LOCK muse-build-tree
    ENVIRONMENT "MUSE_PACKAGE_BUILD_DIR=${PROJECT_BINARY_DIR};MUSE_LIBRARY=$<TARGET_FILE:muse>;MUSE_SERVER_BUILT=${muse_server_built};CMAKE_BUILD_PARALLEL_LEVEL=2")
  if(TEST install-consumer)
    set_tests_properties(install-consumer PROPERTIES RESOURCE_LOCK muse-build-tree)
  endif()

  # A local Ray cluster (loopback, no dashboard) started and stopped by the test; skipped with
  # a message when ray[serve] is not installed.
  add_test(NAME ray-serve COMMAND ${MUSE_PYTHON} -m pytest -q -p no:cacheprovider
           ${CMAKE_CURRENT_SOURCE_DIR}/ray/test_ray_serve.py)
  set_tests_properties(ray-serve PROPERTIES TIMEOUT 300
    ENVIRONMENT "MUSE_LIBRARY=$<TARGET_FILE:muse>;PYTHONPATH=${PROJECT_SOURCE_DIR}/bindings/python")
endif()
