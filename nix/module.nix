# NixOS module: services.lazystore runs `lazystore mount` as a systemd service.
# Written against nixpkgs' module system; not evaluated with nixpkgs here (there is none on the
# machine it was written on). test/packaging/nix-files.test.ts parses it and evaluates its
# options and ExecStart with a small stub of `lib` (test/packaging/stub-lib.nix).
{
  config,
  lib,
  pkgs,
  ...
}:

let
  cfg = config.services.lazystore;
  inherit (lib) mkOption types;

  # The mount command line; every flag here must exist in `lazystore mount --help`
  # (checked by the packaging test).
  args =
    [
      "--state"
      cfg.stateDir
      # the daemon runs as root; without this only root could read the mount
      "--allow-other"
    ]
    ++ lib.concatMap (s: [
      "--substituter"
      s
    ]) cfg.substituters
    ++ lib.concatMap (k: [
      "--trusted-key"
      k
    ]) cfg.trustedPublicKeys
    ++ lib.concatMap (d: [
      "--drvs"
      (toString d)
    ]) cfg.derivationDirs
    ++ lib.optionals (cfg.maxJobs != null) [
      "--max-jobs"
      (toString cfg.maxJobs)
    ]
    ++ cfg.extraArgs
    ++ [ cfg.mountpoint ];

  unmount = "${pkgs.fuse}/bin/fusermount -u -z ${lib.escapeShellArg cfg.mountpoint}";
in
{
  options.services.lazystore = {
    enable = lib.mkEnableOption "lazystore, a FUSE mount of a Nix store whose paths are substituted or built on first read";

    package = lib.mkPackageOption pkgs "lazystore" { };

    mountpoint = mkOption {
      type = types.str;
      default = "/nix/lazy-store";
      description = ''
        Where the store is mounted. The default sits beside the system's /nix/store: store
        paths are readable under it, and `lazystore shell` shows it at /nix/store inside a
        private mount namespace. Setting "/nix/store" shadows the system's own store for every
        process, which on NixOS hides the running system unless lazystore can serve all of it.
      '';
    };

    stateDir = mkOption {
      type = types.str;
      default = "/var/lib/lazystore";
      description = "State directory: unpacked store paths, their metadata, known derivations, build logs (also LAZYSTORE_STATE).";
    };

    substituters = mkOption {
      type = types.listOf types.str;
      default = [ "https://cache.nixos.org" ];
      example = [
        "https://cache.nixos.org"
        "file:///srv/binary-cache"
      ];
      description = "Binary caches to substitute from, in priority order (file://, http://, https://).";
    };

    trustedPublicKeys = mkOption {
      type = types.listOf types.str;
      default = [ "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=" ];
      description = ''
        Public keys (`name:base64`) whose signatures make a substituted path acceptable.
        Unsigned caches need `extraArgs = [ "--no-check-sigs" ]`.
      '';
    };

    maxJobs = mkOption {
      type = types.nullOr types.ints.positive;
      default = null;
      description = "Most builds at once; null means the number of cores.";
    };

    derivationDirs = mkOption {
      type = types.listOf (types.either types.path types.str);
      default = [ ];
      example = [ "/srv/drvs" ];
      description = "Directories (or single .drv files) of derivations that lazystore may build when a path they produce is read.";
    };

    extraArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "--no-check-sigs" ];
      description = "More arguments for `lazystore mount` (see `lazystore mount --help`).";
    };
  };

  config = lib.mkIf cfg.enable {
    warnings = lib.optional (cfg.mountpoint == "/nix/store") "services.lazystore.mountpoint = \"/nix/store\" hides the system's own store from every process.";

    boot.kernelModules = [ "fuse" ];
    environment.systemPackages = [ cfg.package ];
    systemd.tmpfiles.rules = [ "d ${cfg.mountpoint} 0755 root root -" ];

    systemd.services.lazystore = {
      description = "lazystore: lazily realised Nix store at ${cfg.mountpoint}";
      wantedBy = [ "multi-user.target" ];
      after = [
        "local-fs.target"
        "systemd-modules-load.service"
        "network-online.target"
      ];
      wants = [ "network-online.target" ];
      environment.LAZYSTORE_STATE = cfg.stateDir;
      serviceConfig = {
        Type = "simple";
        # A daemon killed hard leaves "Transport endpoint is not connected" behind: clear it
        # before starting and after stopping ("-": not mounted is fine).
        ExecStartPre = "-${unmount}";
        ExecStart = "${lib.getExe cfg.package} mount ${lib.escapeShellArgs args}";
        # SIGTERM to the daemon only: its handler aborts running builds and unmounts cleanly;
        # what is left after TimeoutStopSec (bwrap builders) gets SIGKILL. The unmount runs
        # after the daemon is gone (ExecStopPost, not ExecStop) so it cannot race the
        # daemon's own unmount.
        KillSignal = "SIGTERM";
        KillMode = "mixed";
        TimeoutStopSec = 30;
        ExecStopPost = "-${unmount}";
        Restart = "on-failure";
        RestartSec = 2;
        StateDirectory = lib.mkIf (cfg.stateDir == "/var/lib/lazystore") "lazystore";
      };
    };
  };
}
