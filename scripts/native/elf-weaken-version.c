/*
 * elf-weaken-version: mark one symbol-version requirement of an ELF64 shared library as weak.
 *
 * Why: TorchSharp's libLibTorchSharp.so requires GLIBCXX_3.4.32 (GCC 13's libstdc++) for a single
 * symbol, std::ios_base_library_init(). Debian 12 ships GCC 12's libstdc++ (up to 3.4.30). Setting
 * VER_FLG_WEAK on that requirement lets the dynamic loader accept a library that lacks the version;
 * the symbol itself is then provided by a tiny shim (ios-base-library-init-shim.cpp).
 *
 * Usage: elf-weaken-version FILE VERSION   (e.g. GLIBCXX_3.4.32)
 * Exit codes: 0 weakened or already weak, 3 FILE does not require VERSION, 1 error.
 * Edits FILE in place; it is only ever run on the copy in a build output, never on the NuGet cache.
 */
#include <elf.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail(const char *what, const char *file) {
    fprintf(stderr, "elf-weaken-version: %s: %s\n", file, what);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: elf-weaken-version FILE VERSION\n");
        return 1;
    }
    const char *file = argv[1], *wanted = argv[2];
    int fd = open(file, O_RDWR);
    if (fd < 0) return fail("cannot open for writing", file);
    struct stat st;
    if (fstat(fd, &st) != 0 || (size_t)st.st_size < sizeof(Elf64_Ehdr)) return fail("too small to be ELF", file);
    unsigned char *base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) return fail("mmap failed", file);

    Elf64_Ehdr *eh = (Elf64_Ehdr *)base;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64)
        return fail("not an ELF64 file", file);
    if (eh->e_shoff + (size_t)eh->e_shnum * sizeof(Elf64_Shdr) > (size_t)st.st_size)
        return fail("section table out of bounds", file);

    Elf64_Shdr *sh = (Elf64_Shdr *)(base + eh->e_shoff);
    int status = 3;
    for (int i = 0; i < eh->e_shnum; i++) {
        if (sh[i].sh_type != SHT_GNU_verneed) continue;
        const char *strtab = (const char *)(base + sh[sh[i].sh_link].sh_offset);
        unsigned char *need = base + sh[i].sh_offset;
        for (;;) {
            Elf64_Verneed *vn = (Elf64_Verneed *)need;
            unsigned char *aux = need + vn->vn_aux;
            for (int j = 0; j < vn->vn_cnt; j++) {
                Elf64_Vernaux *va = (Elf64_Vernaux *)aux;
                if (strcmp(strtab + va->vna_name, wanted) == 0) {
                    va->vna_flags |= VER_FLG_WEAK;
                    status = 0;
                }
                if (va->vna_next == 0) break;
                aux += va->vna_next;
            }
            if (vn->vn_next == 0) break;
            need += vn->vn_next;
        }
    }
    if (msync(base, (size_t)st.st_size, MS_SYNC) != 0) return fail("msync failed", file);
    munmap(base, (size_t)st.st_size);
    close(fd);
    return status;
}
