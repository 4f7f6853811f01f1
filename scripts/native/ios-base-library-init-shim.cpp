// Provides std::ios_base_library_init(), the one symbol of GCC 13's libstdc++ (GLIBCXX_3.4.32) that
// TorchSharp's libLibTorchSharp.so needs and Debian 12's GCC 12 libstdc++ lacks. GCC 13 emits a call
// to it from every translation unit that includes <iostream>; its job is to construct the standard
// streams once, which a function-local static std::ios_base::Init does on older libstdc++ too.
#include <ios>

namespace std {
void ios_base_library_init() {
    static ios_base::Init streams_initialised;
    (void)streams_initialised;
}
}  // namespace std
