# A second, CPU-only build of the same sources (cpp/sources.txt + the addon) with node-gyp, for
# environments that have node-gyp but not cmake. package.json sets "gypfile": false so npm never
# runs it on its own; CI builds it once (`npm run build:gyp`) and runs the golden tests on it.
# The one build users run is CMakeLists.txt (cmake-js).
{
  "targets": [
    {
      "target_name": "paratrain",
      "sources": ["<!@(cat cpp/sources.txt)", "cpp/napi/addon.cpp"],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "/usr/include/<!(gcc -dumpmachine)/openblas-openmp"
      ],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-O3", "-fopenmp", "-mavx2", "-mfma", "-fno-math-errno", "-fno-trapping-math", "-fexceptions"],
      "libraries": [
        "-L/usr/lib/<!(gcc -dumpmachine)/openblas-openmp",
        "-Wl,-rpath,/usr/lib/<!(gcc -dumpmachine)/openblas-openmp",
        "-lopenblas",
        "-lzmq",
        "-fopenmp"
      ]
    }
  ]
}
