# NixOS VM test: the service mounts a lazystore, and reading a file inside a store path that
# nothing has built yet makes lazystore build it (its one input, busybox, is substituted from a
# flat-file binary cache made at test-build time, as the VM has no network).
# Use: pkgs.testers.runNixOSTest (import ./nix/vm-test.nix { inherit pkgs; lazystoreModule = …; })
# (flake.nix: `nix build .#checks.x86_64-linux.vm-test`). Not run where it was written: that
# machine has no nixpkgs and no KVM. Only parsed by test/packaging/nix-files.test.ts.
{ pkgs, lazystoreModule }:

let
  # A derivation nobody builds. Plain `derivation`, so its only input is busybox, which
  # lazystore substitutes from the cache below.
  lazyHello = derivation {
    name = "lazystore-vm-test-hello";
    system = pkgs.stdenv.hostPlatform.system;
    builder = "${pkgs.busybox}/bin/sh";
    args = [
      "-c"
      "${pkgs.busybox}/bin/mkdir -p $out/share && echo lazily built > $out/share/greeting"
    ];
  };
  # The .drv file without a dependency on its output: the VM's store gets it and the .drv
  # files of its inputs (lazystore reads input derivations from beside it), never its output.
  drvFile = builtins.unsafeDiscardOutputDependency lazyHello.drvPath;
  outName = baseNameOf (builtins.unsafeDiscardStringContext lazyHello.outPath);

  cache = pkgs.mkBinaryCache { rootPaths = [ pkgs.busybox ]; }; # xz-compressed, unsigned
in
{
  name = "lazystore";

  nodes.machine = {
    imports = [ lazystoreModule ];
    virtualisation.memorySize = 1024;
    services.lazystore = {
      enable = true;
      substituters = [ "file://${cache}" ];
      trustedPublicKeys = [ ];
      extraArgs = [ "--no-check-sigs" ];
      derivationDirs = [ drvFile ];
      maxJobs = 1;
    };
  };

  testScript = ''
    machine.wait_for_unit("lazystore.service")
    machine.wait_until_succeeds("mountpoint -q /nix/lazy-store")

    with subtest("the output was never built by Nix"):
        machine.fail("test -e /nix/store/${outName}")

    with subtest("reading inside it builds it"):
        greeting = machine.succeed("cat /nix/lazy-store/${outName}/share/greeting")
        assert greeting == "lazily built\n", f"unexpected greeting: {greeting!r}"
        machine.succeed("test -d /var/lib/lazystore/store/${outName}")

    with subtest("stopping the service unmounts"):
        machine.succeed("systemctl stop lazystore.service")
        machine.fail("mountpoint -q /nix/lazy-store")
  '';
}
