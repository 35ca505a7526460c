# Included by the top-level CMakeLists.txt when FEOS_FUZZ is ON, before any project code is added:
# every target of the build is compiled with libFuzzer's coverage instrumentation and with ASan
# and UBSan. UBSan findings abort (-fno-sanitize-recover) so libFuzzer counts them as crashes.
if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  message(FATAL_ERROR
    "FEOS_FUZZ=ON needs clang (libFuzzer), but the C++ compiler is ${CMAKE_CXX_COMPILER_ID} "
    "(${CMAKE_CXX_COMPILER}). Configure a separate build tree with CXX=clang++, e.g. "
    "scripts/fuzz.sh, or: CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DFEOS_FUZZ=ON")
endif()
set(FEOS_FUZZ_SANITIZERS "address,undefined")
add_compile_options(-fsanitize=fuzzer-no-link,${FEOS_FUZZ_SANITIZERS} -fno-sanitize-recover=all
                    -fno-omit-frame-pointer)
add_link_options(-fsanitize=${FEOS_FUZZ_SANITIZERS})
