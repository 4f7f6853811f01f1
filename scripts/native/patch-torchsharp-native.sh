#!/usr/bin/env bash
# Makes TorchSharp's native library load on systems whose libstdc++ predates GCC 13 (Debian 12), and
# puts the MKL CPU-dispatch shim beside it (scripts/native/mkl-cpu-dispatch-shim.c).
#
# Usage: patch-torchsharp-native.sh DIR   (DIR holds libLibTorchSharp.so, directly or under
#                                           runtimes/linux-x64/native)
# Called by Directory.Build.targets after every build and publish of a project that ships TorchSharp.
# It edits only the copy in DIR (never the NuGet cache), is idempotent, and does nothing when the
# system libstdc++ already provides GLIBCXX_3.4.32. The diagnosis: docs/decisions.md, "TorchSharp on Debian 12".
set -euo pipefail

dir=${1:?usage: patch-torchsharp-native.sh DIR}
lib="$dir/libLibTorchSharp.so"
[ -f "$lib" ] || lib="$dir/runtimes/linux-x64/native/libLibTorchSharp.so"
[ -f "$lib" ] || exit 0
native_dir=$(dirname "$lib")

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tools="$here/.build"
mkdir -p "$tools"

# 1. The MKL CPU-dispatch shim (any system): without a C compiler the run keeps MKL's own choice
#    and says so in its RunStarted event.
mkl_shim=libbatchcluster-mkl-dispatch.so
if command -v gcc >/dev/null 2>&1; then
  (
    flock 9
    if [ ! -f "$tools/$mkl_shim" ] || [ "$here/mkl-cpu-dispatch-shim.c" -nt "$tools/$mkl_shim" ]; then
      gcc -O2 -shared -fPIC -o "$tools/$mkl_shim.tmp" "$here/mkl-cpu-dispatch-shim.c"
      mv -f "$tools/$mkl_shim.tmp" "$tools/$mkl_shim"
    fi
  ) 9>"$tools/.lock"
  cp -f "$tools/$mkl_shim" "$native_dir/$mkl_shim"
else
  echo "patch-torchsharp-native: gcc is missing, so MKL keeps its generic kernels on AMD CPUs (about 2x slower GEMMs). Fix: apt-get install -y gcc" >&2
fi

# 2. libstdc++: only where the system's is older than TorchSharp needs.
needed_version=GLIBCXX_3.4.32
system_libstdcxx=$(/sbin/ldconfig -p 2>/dev/null | awk '!found && /libstdc\+\+\.so\.6 .*x86-64/ {print $NF; found = 1}')
if [ -n "$system_libstdcxx" ] && grep -qa "$needed_version" "$system_libstdcxx"; then
  exit 0  # new enough: nothing to fix
fi

for tool in gcc g++ patchelf; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "patch-torchsharp-native: '$tool' is missing; it is needed to make TorchSharp load on this system's older libstdc++. Fix: apt-get install -y g++ patchelf" >&2
    exit 1
  fi
done

shim_name=libios-base-library-init-shim.so
(
  # Several projects build in parallel; only one compiles the helpers.
  flock 9
  if [ ! -x "$tools/elf-weaken-version" ] || [ "$here/elf-weaken-version.c" -nt "$tools/elf-weaken-version" ]; then
    gcc -O2 -Wall -o "$tools/elf-weaken-version.tmp" "$here/elf-weaken-version.c"
    mv -f "$tools/elf-weaken-version.tmp" "$tools/elf-weaken-version"
  fi
  if [ ! -f "$tools/$shim_name" ] || [ "$here/ios-base-library-init-shim.cpp" -nt "$tools/$shim_name" ]; then
    g++ -O2 -shared -fPIC -o "$tools/$shim_name.tmp" "$here/ios-base-library-init-shim.cpp"
    mv -f "$tools/$shim_name.tmp" "$tools/$shim_name"
  fi
) 9>"$tools/.lock"

set +e
"$tools/elf-weaken-version" "$lib" "$needed_version"
status=$?
set -e
case $status in
  0) ;;
  3) exit 0 ;;  # this TorchSharp build does not need the version: nothing to do
  *) echo "patch-torchsharp-native: could not edit $lib" >&2; exit 1 ;;
esac

cp -f "$tools/$shim_name" "$native_dir/$shim_name"
if ! patchelf --print-needed "$lib" | grep -qx "$shim_name"; then
  patchelf --add-needed "$shim_name" "$lib"
fi
