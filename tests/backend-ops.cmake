# The backend-op table: every Backend op against double-precision references, for every
# weight type and every CPU dispatch level (tests/test-backend-ops.cpp).
muse_cpp_test(test-backend-ops muse_internal)
# Each dispatch level forced from the environment, as a host would (the table caps itself there).
foreach(level scalar avx2)
  add_test(NAME backend-ops-level-${level} COMMAND test-backend-ops "every backend op*")
  set_tests_properties(backend-ops-level-${level} PROPERTIES ENVIRONMENT "MUSE_CPU_LEVEL=${level}")
endforeach()
