# Where a solve runs. Python sends host (CPU) vectors and reads host vectors back; on a
# CUDA device the bridge copies the state, parameters and cotangent up and the results down
# here (a copy through host memory, not DLPack: see julia/README.md, "GPU"). The CUDA
# methods live in the package extension `ext/PyHBNODEBridgeCUDAExt.jl`, loaded only when
# CUDA.jl is (CPU users never load it).

abstract type Device end

struct CPUDevice <: Device end

"A CUDA device by CUDA.jl's 0-based ordinal (torch's `cuda:N` under the same `CUDA_VISIBLE_DEVICES`)."
struct CUDADevice <: Device
    ordinal::Int
end

"""
    parse_device(name) -> Device

`"cpu"` or `"cuda:N"` (what Python sends).
"""
function parse_device(name::AbstractString)
    name == "cpu" && return CPUDevice()
    m = match(r"^cuda:(\d+)$", name)
    m === nothing && throw(ArgumentError("device must be \"cpu\" or \"cuda:N\", got \"$name\""))
    return CUDADevice(parse(Int, m[1]))
end

const CUDA_ADVICE = "run `python -m pyhbnode.solving.backends.julia install --cuda` (adds CUDA.jl to the Julia project), or solve on the CPU"

"""
    on_device(dev, x::Array) -> array on `dev`

`x` itself on the CPU; a device copy on a CUDA device (method in the CUDA extension).
"""
on_device(::CPUDevice, x::Array) = x
on_device(dev::CUDADevice, x) = throw(ArgumentError("device cuda:$(dev.ordinal) needs CUDA.jl loaded next to PyHBNODEBridge (extension PyHBNODEBridgeCUDAExt): $CUDA_ADVICE"))

"A host `Array` with the values of `x` (no copy when it already is one)."
to_host(x::Array) = x
to_host(x::AbstractArray) = Array(x)

"""
    device_problem(dev) -> String

Empty when `dev` can run solves, else why not (Python raises it as a `ValueError`).
"""
device_problem(::CPUDevice) = ""
function device_problem(dev::CUDADevice)
    ext = Base.get_extension(@__MODULE__, :PyHBNODEBridgeCUDAExt)
    ext === nothing && return "CUDA.jl is not loaded, so PyHBNODEBridgeCUDAExt is not: $CUDA_ADVICE"
    return ext.cuda_problem(dev.ordinal)
end
