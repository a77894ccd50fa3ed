# The lazystore package: the TypeScript sources compiled with tsc, run by nixpkgs' Node.js.
# Not built on the machine this repository was written on (it has Nix 2.8 but no nixpkgs);
# `test/packaging/nix-files.test.ts` only parses it. See docs/INSTALL.md.
{
  lib,
  buildNpmPackage,
  nodejs,
  autoPatchelfHook,
  makeWrapper,
  python3,
  fuse,
  fuse3,
  bubblewrap,
  util-linux,
  xz,
  zstd,
  bzip2,
}:

buildNpmPackage {
  pname = "lazystore";
  version = "0.1.0";

  # Only what `npm ci` and `tsc -p tsconfig.build.json` read (test/ too: benchmarks import test
  # helpers); a local node_modules/ or dist/ never enters the build.
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../package.json
      ../package-lock.json
      ../tsconfig.json
      ../tsconfig.build.json
      ../README.md
      ../bin
      ../binding.gyp
      ../native
      ../src
      ../bench
      ../scripts
      ../test
    ];
  };

  # Any Node.js >= 20 works (package.json "engines"); fuse-native is an N-API addon, so its
  # binary does not depend on the Node.js version.
  inherit nodejs;

  # Hash of the npm dependencies in package-lock.json. It cannot be computed where this file was
  # written (no nixpkgs there), so this is a placeholder: the first `nix build` fails with
  # "hash mismatch ... got: sha256-…"; put that value here (or run
  # `prefetch-npm-deps package-lock.json`). Update it whenever package-lock.json changes.
  npmDepsHash = lib.fakeHash;

  # fuse-native's install script (node-gyp-build) would try a node-gyp rebuild when its
  # prebuilt addon cannot load libfuse.so.2 inside the build sandbox. Keep the prebuilt N-API
  # binary instead and point it at nixpkgs' libfuse 2 with autoPatchelfHook.
  npmRebuildFlags = [ "--ignore-scripts" ];
  # `npm pack` (used to list the files to install) would otherwise run "prepare" (tsc) again.
  npmPackFlags = [ "--ignore-scripts" ];

  nativeBuildInputs = [
    autoPatchelfHook
    makeWrapper
    python3 # node-gyp, for the passthrough addon
  ];

  # native/fuse_backing.c: the two ioctls of FUSE passthrough (the install script is skipped
  # above, so build it here, against nixpkgs' Node.js headers).
  postBuild = ''
    npm run build:native -- --nodedir=${nodejs}
  '';
  buildInputs = [ fuse ]; # libfuse.so.2, which fuse-native's prebuilt addon links against

  # bin/lazystore (a sh launcher) runs LAZYSTORE_NODE, else `node` from PATH: nixpkgs' Node.js.
  # Tools the daemon spawns: bwrap (build sandbox), unshare/mount (`lazystore shell`), the
  # decompressors for binary-cache NARs, and fusermount (unmount). fusermount goes last in PATH
  # so that NixOS's setuid wrapper in /run/wrappers/bin wins for users other than root.
  postFixup = ''
    wrapProgram $out/bin/lazystore \
      --set-default LAZYSTORE_NODE ${lib.getExe nodejs} \
      --prefix PATH : ${
        lib.makeBinPath [
          bubblewrap
          util-linux
          xz
          zstd
          bzip2
        ]
      } \
      --suffix PATH : ${
        lib.makeBinPath [
          fuse
          fuse3
        ]
      }
  '';

  meta = {
    description = "A lazy /nix/store: a FUSE filesystem that substitutes or builds store paths on first read";
    license = lib.licenses.mit;
    mainProgram = "lazystore";
    # fuse-native ships a prebuilt addon for linux-x64 only; other platforms would need a
    # node-gyp build of it (not done here).
    platforms = [ "x86_64-linux" ];
  };
}
