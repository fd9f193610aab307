import json, time, sys, numpy as np, zarr
from tissue import load_tissue, INPUT, HIDDEN
from studies.tasks import InputMap, load_digits_task
from dynamics import Langevin
from plasticity.readout import one_hot_targets
from plasticity.eqprop import EqProp, contrast
from sklearn.linear_model import LogisticRegression
from sklearn.datasets import load_digits
from scipy.spatial.distance import pdist
t=load_tissue('learn-seed0.zarr')
imap=InputMap(t.lattice,(8,8),'z-',2)
inp=t.region('input'); out=t.region('output')
task=load_digits_task(0)
xtr=imap(task.images('train'),tissue=t); ytr=task.y_train
xte=imap(task.images('test'),tissue=t)
d=t.copy(); d.role[inp]=HIDDEN; d.role[out]=INPUT
dg=load_digits(); X=dg.data/16; y=dg.target
clf=LogisticRegression(max_iter=2000).fit(X,y)
src=imap.source; ok=src>=0; cnt=np.bincount(src[ok],minlength=64)
def readback(states):
    v=np.clip(states[:,imap.region],0,1)
    return np.stack([np.bincount(src[ok],weights=r[ok],minlength=64)/cnt for r in v])
T=float(sys.argv[1]); lr=float(sys.argv[2]); epochs=int(sys.argv[3]); ksteps=int(sys.argv[4])
ep=EqProp(optimizer='adam', lr=lr, beta=1.0)
rng=np.random.default_rng(0)
B=32
eng0=Langevin(dt=0.5,temperature=0.0,tol=1e-3,max_steps=300)
engT=Langevin(dt=0.2,temperature=T,max_steps=ksteps,seed=5)
# positive-phase tissue: the original (inputs clamped) + output clamped too: use d2 with both clamped
pos=t.copy(); pos.role[out]=INPUT  # inputs and outputs clamped
clamp_pos=pos.region('input')  # sorted union
chains=None; step=0
ep._prepare(d)
fw=EqProp(beta=0.1,symmetric=True,optimizer='adam',lr=float(sys.argv[5]),batch_size=B)
engF=Langevin(dt=0.5,temperature=0.0,tol=1e-3,max_steps=1000)
def evalfwd():
    from studies.learn import build_learning
    r=eng0.settle(t,inputs=xte)
    from plasticity.readout import predict_groups
    return np.mean(predict_groups(r.rates,t)==task.y_test)
def dream(nch=8, steps=2000, Ts=T):
    lab=np.repeat(np.arange(10),nch)
    e=Langevin(dt=0.2,temperature=Ts,max_steps=steps,seed=11)
    r=e.settle(d,inputs=one_hot_targets(lab,t),steps=steps)
    img=readback(r.state); pred=clf.predict(img)
    acc=np.mean([np.mean(pred[lab==c]==c) for c in range(10)])
    div=np.mean([pdist(img[lab==c]).mean()/pdist(X[y==c]).mean() for c in range(10)])
    return acc,div,img
print('before fwd', evalfwd())
t0=time.time()
for epoch in range(epochs):
    order=rng.permutation(len(xtr))
    for lo in range(0,len(order)-B+1,B):
        idx=order[lo:lo+B]
        Y=one_hot_targets(ytr[idx],t)
        full=np.zeros((B,t.n)); full[:,inp]=xtr[idx]; full[:,out]=Y
        rp=eng0.settle(pos,inputs=full[:,clamp_pos]).rates
        # negative: persistent chains with the same labels
        if chains is None: chains=rp.copy()
        init=chains.copy(); init[:,out]=Y
        rn=engT.settle(d,inputs=Y,init=init,steps=ksteps,start_step=step); step=rn.step_end
        chains=rn.state
        rm=rn.rates
        g=np.empty(t.syn.w.shape); contrast(t.syn.nbr,t.syn.deg,np.ascontiguousarray(rp.T),np.ascontiguousarray(rm.T),g)
        gb=(rp-rm).mean(0)*(d.role!=INPUT)
        ep.apply(d,g,gb)
        t.syn.w[...]=d.syn.w; t.bias[...]=d.bias
        if fw.lr>0: fw.train_step(t,engF,xtr[idx],ytr[idx])
        d.syn.w[...]=t.syn.w; d.bias[...]=t.bias
        # d shares syn? copy() copies syn; sync to t and pos
        t.syn.w[...]=d.syn.w; pos.syn.w[...]=d.syn.w; t.bias[...]=d.bias; pos.bias[...]=d.bias
    a,dv,img=dream()
    print(epoch, 'dream acc',a,'div',dv,'fwd',evalfwd(), time.time()-t0, flush=True)
np.save('img.npy',img)
