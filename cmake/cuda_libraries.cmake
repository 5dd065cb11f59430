# cuda_libraries.cmake — finds cuBLAS + cuBLASLt and NCCL for the CUDA build.
#
# Included by CMakeLists.txt after enable_language(CUDA) and find_package(CUDAToolkit). Looks in
#   1. -DPARATRAIN_NVIDIA_ROOT=<dir containing nvidia/> (NVIDIA's pip-wheel layout), else the
#      site-packages that `python3 -c "import nvidia"` reports;
#   2. the CUDA toolkit (CUDAToolkit_INCLUDE_DIRS / CUDAToolkit_LIBRARY_DIR) and system paths.
# The wheels ship only versioned sonames (libcublasLt.so.13, libnccl.so.2) and no unversioned
# symlink, so the library names are spelled out.
#
# Defines:
#   PARATRAIN_CUBLASLT_FOUND, PARATRAIN_NCCL_FOUND   ON / OFF
#   paratrain::cublas, paratrain::cublasLt, paratrain::nccl   imported targets (when found)
#   PARATRAIN_CUBLASLT_TARGETS, PARATRAIN_NCCL_TARGETS        lists to link (empty when not found)

set(PARATRAIN_NVIDIA_ROOT "" CACHE PATH "Directory that contains NVIDIA's pip-wheel 'nvidia/' folder (site-packages)")

# --- where the pip wheels are -----------------------------------------------------------------
set(_pt_nvidia_root "${PARATRAIN_NVIDIA_ROOT}")
if(NOT _pt_nvidia_root)
  find_program(_pt_python3 NAMES python3 python)
  if(_pt_python3)
    execute_process(
      COMMAND "${_pt_python3}" -c "import nvidia, os; print(os.path.dirname(list(nvidia.__path__)[0]))"
      RESULT_VARIABLE _pt_py_rc OUTPUT_VARIABLE _pt_py_out ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(_pt_py_rc EQUAL 0 AND IS_DIRECTORY "${_pt_py_out}/nvidia")
      set(_pt_nvidia_root "${_pt_py_out}")
    endif()
  endif()
endif()
if(_pt_nvidia_root AND NOT IS_DIRECTORY "${_pt_nvidia_root}/nvidia")
  message(WARNING "PARATRAIN_NVIDIA_ROOT=${_pt_nvidia_root} has no nvidia/ folder; ignoring it")
  set(_pt_nvidia_root "")
endif()

set(_pt_toolkit_includes ${CUDAToolkit_INCLUDE_DIRS})
set(_pt_toolkit_libs ${CUDAToolkit_LIBRARY_DIR})
if(CUDAToolkit_LIBRARY_ROOT)
  list(APPEND _pt_toolkit_libs "${CUDAToolkit_LIBRARY_ROOT}/lib64" "${CUDAToolkit_LIBRARY_ROOT}/lib")
endif()

# Finds one library: versioned names first (wheels), then the plain name (toolkit, distro packages).
# _pt_find_library(<var> <wheel subdir or ""> <base name> <major versions...>)
function(_pt_find_library var wheel_dir base)
  set(_names)
  foreach(_v IN LISTS ARGN)
    list(APPEND _names "lib${base}.so.${_v}")
  endforeach()
  list(APPEND _names "${base}")
  set(_hints)
  if(_pt_nvidia_root AND wheel_dir)
    list(APPEND _hints "${_pt_nvidia_root}/nvidia/${wheel_dir}/lib")
  endif()
  find_library(${var} NAMES ${_names} HINTS ${_hints} ${_pt_toolkit_libs}
               PATH_SUFFIXES lib64 lib lib/x86_64-linux-gnu)
  set(${var} "${${var}}" PARENT_SCOPE)
endfunction()

function(_pt_find_header var wheel_dir header)
  set(_hints)
  if(_pt_nvidia_root AND wheel_dir)
    list(APPEND _hints "${_pt_nvidia_root}/nvidia/${wheel_dir}/include")
  endif()
  find_path(${var} NAMES ${header} HINTS ${_hints} ${_pt_toolkit_includes} PATH_SUFFIXES include)
  set(${var} "${${var}}" PARENT_SCOPE)
endfunction()

function(_pt_import target library include_dir)
  if(NOT TARGET ${target})
    add_library(${target} SHARED IMPORTED GLOBAL)
    set_target_properties(${target} PROPERTIES IMPORTED_LOCATION "${library}"
                                               INTERFACE_INCLUDE_DIRECTORIES "${include_dir}")
    # The wheels' libraries find each other through their own RUNPATH; ours needs their directory.
    get_filename_component(_dir "${library}" DIRECTORY)
    set_property(TARGET ${target} APPEND PROPERTY INTERFACE_LINK_DIRECTORIES "${_dir}")
  endif()
endfunction()

# --- cuBLAS + cuBLASLt ------------------------------------------------------------------------
_pt_find_header(PARATRAIN_CUBLASLT_INCLUDE_DIR cublas cublasLt.h)
_pt_find_library(PARATRAIN_CUBLASLT_LIBRARY cublas cublasLt 13 12)
_pt_find_library(PARATRAIN_CUBLAS_LIBRARY cublas cublas 13 12)
set(PARATRAIN_CUBLASLT_FOUND OFF)
set(PARATRAIN_CUBLASLT_TARGETS)
if(PARATRAIN_CUBLASLT_INCLUDE_DIR AND PARATRAIN_CUBLASLT_LIBRARY AND PARATRAIN_CUBLAS_LIBRARY)
  set(PARATRAIN_CUBLASLT_FOUND ON)
  _pt_import(paratrain::cublas "${PARATRAIN_CUBLAS_LIBRARY}" "${PARATRAIN_CUBLASLT_INCLUDE_DIR}")
  _pt_import(paratrain::cublasLt "${PARATRAIN_CUBLASLT_LIBRARY}" "${PARATRAIN_CUBLASLT_INCLUDE_DIR}")
  set(PARATRAIN_CUBLASLT_TARGETS paratrain::cublasLt paratrain::cublas)
  message(STATUS "paratrain: cuBLASLt: ${PARATRAIN_CUBLASLT_LIBRARY} (headers ${PARATRAIN_CUBLASLT_INCLUDE_DIR})")
  message(STATUS "paratrain: cuBLAS:   ${PARATRAIN_CUBLAS_LIBRARY}")
else()
  message(STATUS "paratrain: cuBLAS/cuBLASLt not found (header: ${PARATRAIN_CUBLASLT_INCLUDE_DIR}, "
                 "libcublasLt: ${PARATRAIN_CUBLASLT_LIBRARY}, libcublas: ${PARATRAIN_CUBLAS_LIBRARY}); "
                 "install the CUDA toolkit's libcublas-dev or `pip install nvidia-cublas` "
                 "(then -DPARATRAIN_NVIDIA_ROOT=<site-packages> if python3 is not that environment's)")
endif()

# --- NCCL -------------------------------------------------------------------------------------
_pt_find_header(PARATRAIN_NCCL_INCLUDE_DIR nccl nccl.h)
_pt_find_library(PARATRAIN_NCCL_LIBRARY nccl nccl 2)
set(PARATRAIN_NCCL_FOUND OFF)
set(PARATRAIN_NCCL_TARGETS)
if(PARATRAIN_NCCL_INCLUDE_DIR AND PARATRAIN_NCCL_LIBRARY)
  set(PARATRAIN_NCCL_FOUND ON)
  _pt_import(paratrain::nccl "${PARATRAIN_NCCL_LIBRARY}" "${PARATRAIN_NCCL_INCLUDE_DIR}")
  set(PARATRAIN_NCCL_TARGETS paratrain::nccl)
  message(STATUS "paratrain: NCCL: ${PARATRAIN_NCCL_LIBRARY} (headers ${PARATRAIN_NCCL_INCLUDE_DIR})")
else()
  message(STATUS "paratrain: NCCL not found (header: ${PARATRAIN_NCCL_INCLUDE_DIR}, library: "
                 "${PARATRAIN_NCCL_LIBRARY}); install libnccl-dev or `pip install nvidia-nccl-cu13` "
                 "(then -DPARATRAIN_NVIDIA_ROOT=<site-packages>); GPU ranks will use the libzmq ring")
endif()

if(_pt_nvidia_root)
  message(STATUS "paratrain: searched NVIDIA pip wheels under ${_pt_nvidia_root}/nvidia")
endif()
