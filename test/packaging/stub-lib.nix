# Just enough of nixpkgs' `lib` to evaluate nix/module.nix without nixpkgs: options become their
# declarations, `mkIf` keeps its condition, shell escaping matches lib.strings.escapeShellArg.
let
  escapeShellArg =
    s: if builtins.match "[[:alnum:],._+:@%/=-]+" s != null then s else "'${builtins.replaceStrings [ "'" ] [ "'\\''" ] s}'";
  type = name: { inherit name; };
in
{
  mkOption = decl: decl // { _option = true; };
  mkEnableOption = what: {
    _option = true;
    default = false;
    description = "Whether to enable ${what}.";
  };
  mkPackageOption = pkgs: name: _: {
    _option = true;
    default = pkgs.${name};
  };
  mkIf = condition: content: {
    _type = "if";
    inherit condition content;
  };
  mkDefault = x: x;
  optional = c: x: if c then [ x ] else [ ];
  optionals = c: xs: if c then xs else [ ];
  concatMap = f: xs: builtins.concatLists (map f xs);
  inherit escapeShellArg;
  escapeShellArgs = xs: builtins.concatStringsSep " " (map escapeShellArg xs);
  getExe = p: "${p}/bin/lazystore";
  types = {
    bool = type "bool";
    str = type "str";
    path = type "path";
    listOf = t: type "listOf ${t.name}";
    nullOr = t: type "nullOr ${t.name}";
    either = a: b: type "either ${a.name} ${b.name}";
    ints.positive = type "positive int";
  };
}
