# Derivations for the realiser tests. nix-instantiate realise.nix -A <attr> --argstr salt S
{ salt ? "", lib ? /tmp/nix-reference/nix/lib.nix }:
let
  l = import lib { inherit salt; };
  slow = l.mk { name = "realise-slow"; script = ''sleep 1; echo slow > $out''; };
  broken = l.mk { name = "realise-broken"; script = ''echo "broken on purpose"; exit 7''; };
in {
  inherit slow broken;
  # depends on a failing derivation: must fail with broken's drv and log
  dependent = l.mk { name = "realise-dependent"; inherit broken; script = ''cat $broken > $out''; };
  # two outputs of one derivation: concurrent requests for either share one build
  twoOutputs = l.mk {
    name = "realise-two";
    outputs = [ "out" "doc" ];
    script = ''sleep 1; echo out > $out; echo doc > $doc'';
  };
}
