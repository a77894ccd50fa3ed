# Evaluates nix/module.nix with stub-lib.nix and fake package paths:
#   nix-instantiate --eval --strict --json eval-module.nix --arg settings '{ … }'
# gives the option declarations' names and defaults, and the systemd unit made from
# `settings` (merged over the defaults, enable = true).
{
  settings ? { },
}:
let
  lib = import ./stub-lib.nix;
  pkgs = {
    lazystore = "/nix/store/00000000000000000000000000000000-lazystore";
    fuse = "/nix/store/00000000000000000000000000000000-fuse";
  };
  module = import ../../nix/module.nix;
  declared =
    (module {
      config = throw "option declarations must not read config";
      inherit lib pkgs;
    }).options.services.lazystore;
  defaults = builtins.mapAttrs (_: o: o.default) declared;
  cfg = defaults // { enable = true; } // settings;
  result = module {
    config.services.lazystore = cfg;
    inherit lib pkgs;
  };
  unit = result.config.content.systemd.services.lazystore;
in
{
  options = builtins.mapAttrs (_: o: {
    default = o.default;
    hasDescription = o ? description;
    type = (o.type or { name = "bool"; }).name;
  }) declared;
  enabledWhen = result.config.condition;
  kernelModules = result.config.content.boot.kernelModules;
  inherit (unit) after wants wantedBy environment;
  serviceConfig = unit.serviceConfig // {
    StateDirectory = unit.serviceConfig.StateDirectory.content;
    StateDirectoryWhen = unit.serviceConfig.StateDirectory.condition;
  };
}
