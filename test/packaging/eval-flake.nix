# Evaluates flake.nix's outputs against a stub nixpkgs (no nixpkgs here), deep enough to check
# its wiring: the package and overlay call nix/package.nix, the module imports nix/module.nix,
# and the VM test's service settings give a command line (through eval-module.nix).
#   nix-instantiate --eval --strict --json test/packaging/eval-flake.nix
let
  lib = import ./stub-lib.nix;
  fake = name: "/nix/store/00000000000000000000000000000000-${name}";
  genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
  pkgs =
    genAttrs [ "nodejs" "bubblewrap" "fuse" "fuse3" "xz" "zstd" "bzip2" "jq" "nix" "busybox" ] fake
    // {
      callPackage = path: _: { source = toString path; };
      testers.runNixOSTest = test: test;
      stdenv.hostPlatform.system = "x86_64-linux";
      mkBinaryCache = _: fake "binary-cache";
      runCommand = name: _: _: fake name;
      mkShell = attrs: attrs;
    };
  nixpkgs = {
    lib = lib // { inherit genAttrs; };
    legacyPackages.x86_64-linux = pkgs;
  };
  flake = import ../../flake.nix;
  self = flake.outputs { inherit self nixpkgs; };
  vm = self.checks.x86_64-linux.vm-test;
  module = self.nixosModules.default { inherit pkgs lib; };
  vmSettings = vm.nodes.machine.services.lazystore;
in
{
  nixpkgsUrl = flake.inputs.nixpkgs.url;
  packages = builtins.attrNames self.packages.x86_64-linux;
  packageSource = self.packages.x86_64-linux.default.source;
  overlaySource = (self.overlays.default pkgs { }).lazystore.source;
  moduleImports = map toString module.imports;
  vmName = vm.name;
  inherit vmSettings;
  vmExecStart = (import ./eval-module.nix { settings = vmSettings; }).serviceConfig.ExecStart;
}
