# A flat fixed-output derivation whose declared hash is wrong (sha256 of "wrong\n").
{ salt ? "", lib ? /tmp/nix-reference/nix/lib.nix }:
let l = import lib { inherit salt; }; in
l.mk {
  name = "bad-fod";
  outputHashMode = "flat";
  outputHashAlgo = "sha256";
  outputHash = "sha256-pcVEqOyg5v6scTX7xCcEYjRWF4KF5GZxXkdR5/ipGkQ=";
  script = ''printf 'not what was promised\n' > $out'';
}
