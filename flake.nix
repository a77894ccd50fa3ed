{
  description = "lazystore: a lazy /nix/store, a FUSE filesystem that substitutes or builds store paths on first read";

  # Not evaluated where it was written (Nix 2.8, no nixpkgs, no network): see docs/INSTALL.md
  # for what has and has not been run. Pin with `nix flake lock` on first use.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      # fuse-native ships a prebuilt addon for linux-x64 only (see nix/package.nix).
      systems = [ "x86_64-linux" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      overlays.default = final: _prev: { lazystore = final.callPackage ./nix/package.nix { }; };

      packages = forAllSystems (pkgs: rec {
        lazystore = pkgs.callPackage ./nix/package.nix { };
        default = lazystore;
      });

      # The module with its package defaulting to this flake's build.
      nixosModules.default =
        { pkgs, lib, ... }:
        {
          imports = [ ./nix/module.nix ];
          services.lazystore.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.lazystore;
        };

      checks = forAllSystems (pkgs: {
        package = self.packages.${pkgs.stdenv.hostPlatform.system}.lazystore;
        vm-test = pkgs.testers.runNixOSTest (
          import ./nix/vm-test.nix {
            inherit pkgs;
            lazystoreModule = self.nixosModules.default;
          }
        );
      });

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = with pkgs; [
            nodejs
            bubblewrap
            fuse
            fuse3
            xz
            zstd
            bzip2
            jq
            nix
          ];
        };
      });
    };
}
